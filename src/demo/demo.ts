// The one-machine demo of the Kubernetes docs' walkthrough ("Declare Network Policy") on the real agent:
// nodes and pods are network namespaces (the sandbox), one `netpol-agent run` per node reads the cluster
// from a datastore file, and the walkthrough edits that file the way `kubectl apply` edits the cluster.
// busybox wget shows the effect from both sides; the agent's own /rules and /metrics show how.
import { execFile } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import type { PodState } from '../api';
import { DEFAULT_TABLE } from '../dataplane';
import { InvalidInputError } from '../errors';
import { sandboxPods } from '../probe';
import { Sandbox } from '../sandbox';
import type { Topology } from '../sandbox';
import { AGENT_LISTEN, CLI, NodeAgent } from './node-agent';
import { loadScenario } from './scenario';

/** The embedded default scenario, shipped with the package. */
export const DEFAULT_SCENARIO = join(__dirname, '..', '..', '..', 'examples', 'access-nginx');

const WGET_SECONDS = 2;
const READY_MS = 60_000;
const PROGRAMMED_MS = 30_000;
const COMMAND_MS = 15_000;
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const POLICY_LATENCY = 'netpol_agent_programming_latency_seconds';

export interface DemoOptions {
  readonly files: readonly string[];
  readonly topology: Topology;
  /** Leave the sandbox and the agents running after the walkthrough, until Ctrl-C. */
  readonly keep: boolean;
  readonly write: (line: string) => void;
}

/** A sample's value in Prometheus text, e.g. metric(text, 'x_count{kind="Pod"}'); null when absent. */
function metric(text: string, sample: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? null : Number(line.slice(sample.length + 1));
}

function labelsOf(pod: PodState): string {
  return Object.entries(pod.labels).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
}

function urlOf(ip: string, port: number): string {
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/`;
}

const execFileAsync = promisify(execFile);

/** Runs a shell command line exactly as printed; its output with the exit status when it failed. */
async function shell(command: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('sh', ['-c', command], { timeout: COMMAND_MS, encoding: 'utf8' });
    return stdout.trimEnd();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trimEnd() + `\n# exit status ${String(e.code)}`;
  }
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const say = options.write;
  const scenario = loadScenario(options.files);
  const { objects } = scenario;
  const servers = objects.pods.filter((p) => p.ips.length > 0 && p.ports.some((c) => c.protocol === 'TCP'));
  const clients = objects.pods.filter((p) => p.ips.length > 0 && !servers.includes(p));
  if (servers.length === 0 || clients.length === 0 || objects.policies.length === 0) {
    throw new InvalidInputError(options.files.join(', '), 'the demo needs a pod that declares a TCP port, at least one client pod and a NetworkPolicy');
  }
  const pods = sandboxPods(objects);
  const nodes = [...new Set(pods.map((p) => p.node))].sort();
  const workDir = mkdtempSync(join(tmpdir(), 'netpol-demo-'));
  const datastore = join(workDir, 'datastore.yaml');
  const agents: NodeAgent[] = [];
  let sandbox: Sandbox | null = null;
  let keeping = false;

  // Ctrl-C (or a kill) at any point: stop the agents and remove the work directory here; the sandbox's
  // own exit handler deletes its namespaces (and with them the agents' nftables tables).
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const agent of agents) agent.killNow();
    rmSync(workDir, { recursive: true, force: true });
    say(`# ${signal}: stopped the agents, removed ${workDir}${sandbox === null ? '' : ` and the namespaces ${sandbox.name}-*`}`);
    process.exit(keeping ? 0 : 130);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  try {
    writeFileSync(datastore, scenario.initial);
    say('# netpol-agent demo: the Kubernetes docs\' "Declare Network Policy" walkthrough, with real packets and the real agent');
    say('# Standing in for kubectl (no cluster here): nodes and pods are network namespaces, `kubectl exec POD -- wget` is busybox wget run in the pod\'s namespace, `kubectl apply -f` adds the manifest to the agents\' datastore file.');
    sandbox = await Sandbox.create({ prefix: 'demo', topology: options.topology, nodes, pods });
    const sb = sandbox;
    say(`# sandbox ${sb.name} (${options.topology} topology): ${pods.map((p) => `${p.key} ${p.ips.join(',')} on ${p.node}`).join('; ')}`);
    say(`# datastore file ${datastore}: the Namespace and Pods, no NetworkPolicy yet`);
    for (const node of nodes) {
      const agent = NodeAgent.start(sb, node, datastore, workDir);
      agents.push(agent);
      say(`$ ${agent.command} &`);
    }
    await Promise.all(agents.map((a) => a.waitFor('ready (/readyz)', async () => (await a.get('/readyz')).ok, READY_MS)));
    say(`# every agent is ready: GET http://${AGENT_LISTEN}/readyz answers 200 in each node's namespace`);

    const wgetAll = async (): Promise<void> => {
      for (const server of servers) {
        const port = server.ports.find((c) => c.protocol === 'TCP')?.port ?? 80;
        const ip = server.ips[0] ?? '';
        for (const client of clients) {
          const key = `${client.namespace}/${client.name}`;
          say(`# kubectl exec ${client.name} -- wget --spider --timeout=1 ${server.name}   (pod ${key}, labels ${labelsOf(client)}; ${server.name} is ${ip})`);
          const argv = ['timeout', String(WGET_SECONDS), 'busybox', 'wget', '--spider', urlOf(ip, port)];
          say(`$ ip netns exec ${sb.podNetnsName(key)} ${argv.join(' ')}`);
          const res = await sb.exec(key, argv, (WGET_SECONDS + 3) * 1000);
          const output = `${res.stdout}${res.stderr}`.trimEnd();
          if (output !== '') say(output);
          if (res.code === 124) say(`# download timed out: no answer within ${WGET_SECONDS} s (timeout(1) stopped busybox wget: exit status 124)`);
          else if (res.code !== 0) say(`# exit status ${String(res.code)}`);
        }
      }
    };
    await wgetAll();

    say('');
    const policyNames = objects.policies.map((p) => `NetworkPolicy ${p.namespace}/${p.name}`).join(', ');
    say(`# kubectl apply -f ${scenario.policyFiles.map((f) => relative(process.cwd(), f)).join(' -f ')}: ${policyNames} added to ${datastore}`);
    writeFileSync(`${datastore}.tmp`, scenario.initial + scenario.policies);
    renameSync(`${datastore}.tmp`, datastore); // one change the agents see whole
    const programmed = `${POLICY_LATENCY}_count{kind="NetworkPolicy"}`;
    await Promise.all(agents.map((a) => a.waitFor('the policy committed to its nftables', async () => {
      const text = (await a.get('/metrics')).body;
      return (metric(text, programmed) ?? 0) >= objects.policies.length && metric(text, 'netpol_agent_pending_events') === 0;
    }, PROGRAMMED_MS)));
    say(`# every agent has committed it to its node's nftables (/metrics: ${programmed} >= ${objects.policies.length}, netpol_agent_pending_events 0)`);
    await wgetAll();

    say('');
    for (const node of [...new Set(servers.map((p) => p.nodeName))]) {
      const agent = agents.find((a) => a.node === node);
      if (agent === undefined) continue;
      say(`# what the agent of ${node} enforces: its /rules endpoint, readable view`);
      const rules = `${CLI} rules --socket ${agent.debugSocket}`;
      say(`$ ${rules}`);
      say(await shell(rules));
      say(`# how long the policy took from the file change to ${node}'s kernel: the programming latency histogram on /metrics`);
      const metrics = `ip netns exec ${agent.netns} timeout 5 busybox wget -q -O - http://${AGENT_LISTEN}/metrics | grep -F -e '${POLICY_LATENCY}_sum{kind="NetworkPolicy"}' -e '${POLICY_LATENCY}_count{kind="NetworkPolicy"}'`;
      say(`$ ${metrics}`);
      const samples = await shell(metrics);
      say(samples);
      const sum = metric(samples, `${POLICY_LATENCY}_sum{kind="NetworkPolicy"}`);
      const count = metric(samples, `${POLICY_LATENCY}_count{kind="NetworkPolicy"}`);
      if (sum !== null && count !== null && count > 0) say(`# ${(sum / count * 1000).toFixed(1)} ms per NetworkPolicy event, from reading the file to the committed nftables transaction`);
    }

    if (options.keep) {
      keeping = true;
      const [firstClient, firstServer] = [clients[0], servers[0]];
      const node = agents[0];
      say('');
      say('# --keep: everything stays up until you press Ctrl-C here. To explore from another shell (root):');
      if (firstClient !== undefined && firstServer !== undefined) {
        const key = `${firstClient.namespace}/${firstClient.name}`;
        say(`#   ip netns exec ${sb.podNetnsName(key)} timeout ${WGET_SECONDS} busybox wget --spider ${urlOf(firstServer.ips[0] ?? '', firstServer.ports[0]?.port ?? 80)}   (as ${key})`);
      }
      say(`#   edit ${datastore} (add a label, delete the policy): the agents follow within milliseconds`);
      if (node !== undefined) {
        say(`#   ${CLI} rules --socket ${node.debugSocket} --verbose`);
        say(`#   ip netns exec ${node.netns} nft list table inet ${DEFAULT_TABLE}`);
        say(`#   tail -f ${node.logFile}`);
      }
      say(`# Ctrl-C stops the agents and deletes the namespaces and ${workDir}. If this process is killed instead, clean up with:`);
      say(`#   kill ${agents.map((a) => a.pid ?? '').join(' ')}; ip netns list | grep -o '^${sb.name}-[^ ]*' | xargs -rn1 ip netns del; rm -r ${workDir}`);
      await new Promise<never>(() => {
        // The agents keep the process alive; the signal handler ends it.
        setInterval(() => undefined, 1 << 30);
      });
    }
  } finally {
    for (const signal of SIGNALS) process.off(signal, onSignal);
    await Promise.all(agents.map((a) => a.stop()));
    await sandbox?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  }
  say('');
  say(`# done: the agents are stopped, the namespaces ${sandbox.name}-* (with their nftables tables) and ${workDir} are gone`);
}
