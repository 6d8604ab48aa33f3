// The one-machine demo of the Kubernetes docs' walkthrough ("Declare Network Policy"), with real
// packets: an nginx pod is reachable, a policy lets only pods labelled access: "true" in, and busybox
// wget shows it from both sides. Pods and nodes are network namespaces (the sandbox), the rule tables
// come from the compiler and the dataplane programs each node's nftables.
import { join } from 'node:path';
import { buildRuleTable } from '../ruletable';
import { DataplaneLab } from '../probe';
import type { Topology } from '../sandbox';
import { eventsBetween, loadManifests } from '../source';
import type { ClusterObjects } from '../source';

/** The embedded default scenario, shipped with the package. */
export const DEFAULT_SCENARIO = join(__dirname, '..', '..', '..', 'examples', 'access-nginx');

const WGET_SECONDS = 2;

export interface DemoOptions {
  readonly files: readonly string[];
  readonly topology: Topology;
  readonly write: (line: string) => void;
}

/** busybox wget has no usable timeout flag here, so timeout(1) bounds it; say which of the two ended it. */
async function wget(lab: DataplaneLab, from: string, ip: string, port: number): Promise<string> {
  const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/`;
  const res = await lab.sandbox.exec(from, ['timeout', String(WGET_SECONDS), 'busybox', 'wget', '--spider', url], (WGET_SECONDS + 3) * 1000);
  const output = `${res.stdout}${res.stderr}`.trim();
  if (res.code === 124) return `${output === '' ? '' : `${output}\n`}wget: download timed out (no answer within ${WGET_SECONDS} s; timeout(1) stopped busybox wget)`;
  return output === '' ? `wget exited with code ${String(res.code)}` : output;
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const say = options.write;
  const all = loadManifests(options.files);
  const withoutPolicies: ClusterObjects = { ...all, policies: [] };
  const servers = all.pods.filter((p) => p.ports.some((c) => c.protocol === 'TCP'));
  const clients = all.pods.filter((p) => !servers.includes(p));
  if (servers.length === 0 || clients.length === 0) throw new Error('demo: the scenario needs a pod that declares a TCP port and at least one client pod');
  const lab = await DataplaneLab.create(all, options.topology, 'demo');
  try {
    const probeAll = async (): Promise<void> => {
      for (const server of servers) {
        const port = server.ports.find((c) => c.protocol === 'TCP')?.port ?? 80;
        for (const client of clients) {
          const labels = Object.entries(client.labels).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
          say(`$ kubectl exec ${client.namespace}/${client.name} (labels ${labels}) -- wget --spider ${server.name}:${port}`);
          say((await wget(lab, `${client.namespace}/${client.name}`, server.ips[0] ?? '', port)).replace(/^/gm, '  '));
        }
      }
    };
    say(`# ${all.pods.length} pods on ${new Set(all.pods.map((p) => p.nodeName)).size} nodes (network namespaces, ${options.topology} topology); no NetworkPolicy yet`);
    await lab.program(eventsBetween(null, withoutPolicies));
    await probeAll();
    say('');
    say(`# kubectl apply: ${all.policies.map((p) => `NetworkPolicy ${p.namespace}/${p.name}`).join(', ')}`);
    await lab.update(eventsBetween(withoutPolicies, all));
    for (const node of [...new Set(servers.map((p) => p.nodeName))]) {
      const compiler = lab.compiler(node);
      if (compiler === undefined) continue;
      say(`# rule table of ${node} (what /rules shows):`);
      say(JSON.stringify(buildRuleTable(node, compiler.elements()), null, 2).replace(/^/gm, '  '));
    }
    await probeAll();
  } finally {
    await lab.destroy();
  }
}
