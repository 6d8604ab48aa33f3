// The docs' "Declare Network Policy" walkthrough, verbatim, with the real kubectl in a real two-node
// cluster (test/e2e/cluster: etcd, kube-apiserver, controller-manager, scheduler; on each node kubelet on
// containerd and runc with the bridge CNI, pod ranges routed between the nodes, kube-proxy in nftables mode;
// CoreDNS). The agent runs on both nodes; the probe loops run on the node nginx is not on, so the verdicts
// cross nodes (the policy is enforced by the agent of nginx's node on traffic routed from the other). Needs root and the build of
// test/e2e/cluster/build.sh (about 12 min the first time, cached afterwards). Run with
//   npm run test:e2e
// The policy half installs the agent with `kubectl apply -k manifests/` from the image named by
// E2E_AGENT_IMAGE: the path of its docker-save archive, or `build` to make it with scripts/image/build.sh
// (the repository's Dockerfile; the archive's tag is the one manifests/ references).
//
// The docs run `wget --spider --timeout=1 nginx`; Debian's busybox (our busybox:e2e) has no --timeout
// and segfaults on -T, so each run is `timeout 1 wget --spider nginx`: same one-second bound, but a
// timed-out wget is killed (exit 143) after printing "Connecting to nginx (...)", instead of printing
// "wget: download timed out" itself. Like the docs, the command is typed into `kubectl run busybox ... --
// /bin/sh` (on stdin: no terminal here).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parse, parseAllDocuments } from 'yaml';
import { join } from 'node:path';
import { Cluster, REPO_ROOT, run, type CommandResult } from './cluster';

const ENABLED = process.env.E2E_CLUSTER === '1';
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, containerd, kubelet)' : !ENABLED ? 'real-cluster tier: run it with `npm run test:e2e` (E2E_CLUSTER=1)' : false;

const IMAGE_BUILD_SCRIPT = join(REPO_ROOT, 'scripts', 'image', 'build.sh');
const AGENT_IMAGE = process.env.E2E_AGENT_IMAGE ?? '';
const AGENT_SKIP = AGENT_IMAGE === 'build' || (AGENT_IMAGE !== '' && existsSync(AGENT_IMAGE))
  ? false
  : `the policy half needs the agent's image: set E2E_AGENT_IMAGE to its docker-save archive, or to \`build\` (now ${AGENT_IMAGE === '' ? 'unset' : `${AGENT_IMAGE}, missing`})`;

/** The agent's image archive: the given one, or the one scripts/image/build.sh makes (its stdout's last line). */
async function agentImageArchive(onLog: (line: string) => void): Promise<string> {
  if (AGENT_IMAGE !== 'build') return AGENT_IMAGE;
  const started = Date.now();
  const built = await run('bash', [IMAGE_BUILD_SCRIPT], { timeoutMs: 40 * 60_000 });
  if (built.code !== 0) throw new Error(`${IMAGE_BUILD_SCRIPT} failed (exit ${built.code}): ${built.stderr.slice(-3000)}`);
  onLog(`agent image built in ${Math.round((Date.now() - started) / 1000)} s`);
  return built.stdout.trim().split('\n').pop() ?? '';
}

/** What the user types at the busybox shell's prompt (the docs: `wget --spider --timeout=1 nginx`). */
const WGET = 'timeout 1 wget --spider nginx';
const CONCLUSIVE = /Connecting to nginx|remote file exists/;
const transcript: string[] = [];

/** An argument as a shell would need it typed. */
const shellWord = (arg: string): string => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);

function record(args: string[], r: CommandResult, typed?: string): CommandResult {
  transcript.push(`$ kubectl ${args.map(shellWord).join(' ')}`, ...(typed === undefined ? [] : [`/ # ${typed}`]), (r.stdout + r.stderr).trimEnd(), `(exit ${r.code})`);
  return r;
}

/**
 * `kubectl run busybox --rm -i [--labels=...] --image=busybox:e2e --restart=Never -- /bin/sh`, then
 * `timeout 1 wget --spider nginx` typed at its prompt, as the docs do (without -t: no terminal here). The
 * shell reads the command only once kubectl has attached, so no output is lost; and wget is the shell's
 * child, not the container's PID 1, which ignores the SIGTERM `timeout` sends it (a bare `-- timeout 1 wget`
 * hangs when wget is cut off: busybox's timeout execs the command and signals it from a forked child).
 * --restart=Never: kubectl exits with the shell's exit code, wget's. wget prints "Connecting to nginx" first
 * and "remote file exists" last; a run showing neither is no verdict and is run again (each run is in the
 * transcript).
 */
async function busyboxWget(cluster: Cluster, labels?: string): Promise<CommandResult> {
  const args = ['run', 'busybox', '--rm', '-i', ...(labels === undefined ? [] : [`--labels=${labels}`]), '--image=busybox:e2e', '--restart=Never', '--', '/bin/sh'];
  const once = async (): Promise<CommandResult> => record(args, await cluster.kubectl(args, { timeoutMs: 120_000, input: `${WGET}\n` }), WGET);
  let r = await once();
  for (let attempt = 1; attempt < 5 && !CONCLUSIVE.test(r.stdout + r.stderr); attempt++) r = await once();
  assert.match(r.stdout + r.stderr, CONCLUSIVE, 'five runs in a row lost their output');
  return r;
}

describe('docs walkthrough in a real cluster', { skip: SKIP }, () => {
  let cluster: Cluster;

  before(async () => {
    const onLog = (line: string): void => console.log(`# ${line}`);
    cluster = await Cluster.start({ nodes: 2, images: AGENT_SKIP === false ? [await agentImageArchive(onLog)] : [], onLog });
  }, { timeout: 45 * 60_000 });

  after(async () => {
    console.log(`# transcript:\n${transcript.map((l) => `#   ${l.replace(/\n/g, '\n#   ')}`).join('\n')}`);
    // down.sh verifies that no process, mount, namespace, cgroup or sysctl change is left, and fails if any is.
    await cluster?.stop();
  }, { timeout: 5 * 60_000 });

  test('kubectl create deployment nginx --image=nginx:e2e; the pod runs', async () => {
    const args = ['create', 'deployment', 'nginx', '--image=nginx:e2e'];
    const r = record(args, await cluster.kubectl(args));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment.apps\/nginx created/);
    await cluster.kubectlOk(['rollout', 'status', 'deployment/nginx', '--timeout=120s'], { timeoutMs: 130_000 });
  });

  test('kubectl expose deployment nginx --port=80', async () => {
    const args = ['expose', 'deployment', 'nginx', '--port=80'];
    const r = record(args, await cluster.kubectl(args));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /service\/nginx exposed/);
    record(['get', 'svc,pod'], await cluster.kubectl(['get', 'svc,pod']));
    // kube-proxy programs the new Service a moment later (seconds on a loaded machine); a wget before
    // that times out, with no policy anywhere. Wait until its table has the Service address and the
    // nginx pod as its endpoint.
    const clusterIp = (await cluster.kubectlOk(['get', 'service', 'nginx', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const endpoint = await podIp(cluster, 'default', '-l app=nginx');
    await waitFor(async () => {
      const table = (await cluster.inNetns('nft', ['list', 'table', 'ip', 'kube-proxy'])).stdout;
      return table.includes(clusterIp) && table.includes(`${endpoint}:80`);
    }, 60_000, `kube-proxy never programmed the Service ${clusterIp} -> ${endpoint}:80`);
  });

  test('busybox reaches the nginx Service by name (CoreDNS, kube-proxy): "remote file exists"', async () => {
    const r = await busyboxWget(cluster);
    assert.match(r.stdout + r.stderr, /remote file exists/, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0);
  });

  test('every manifest in manifests/ passes kubectl apply --dry-run=server', async () => {
    // Server-side validation of namespaced objects needs their namespace to exist: create those first.
    for (const dir of [join(REPO_ROOT, 'manifests'), join(REPO_ROOT, 'manifests', 'examples')]) {
      // Every manifest of the folder is in its kustomization, so the dry run below covers them all.
      const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources?: string[] };
      const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
      assert.deepEqual(files.filter((f) => !(kustomization.resources ?? []).includes(f)), [], `${dir}/kustomization.yaml leaves out manifests`);
      const objects = parseAllDocuments(await cluster.kubectlOk(['kustomize', dir])).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } });
      for (const ns of objects.filter((o) => o.kind === 'Namespace')) {
        await cluster.kubectlOk(['create', 'namespace', ns.metadata?.name ?? '']);
      }
      const r = await cluster.kubectl(['apply', '--dry-run=server', '-k', dir]);
      assert.equal(r.code, 0, `kubectl apply --dry-run=server -k ${dir}: ${r.stderr}`);
      assert.match(r.stdout, /\(server dry run\)/);
      for (const ns of objects.filter((o) => o.kind === 'Namespace')) {
        await cluster.kubectlOk(['delete', 'namespace', ns.metadata?.name ?? '', '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
      }
    }
  });

  describe('with the agent installed from manifests/', { skip: AGENT_SKIP }, () => {
    let appliedAt = 0;

    test('kubectl apply -k manifests/: the agent DaemonSet becomes ready', async () => {
      const args = ['apply', '-k', join(REPO_ROOT, 'manifests')];
      const r = record(args, await cluster.kubectl(args));
      assert.equal(r.code, 0, r.stderr);
      const rollout = ['-n', AGENT_NS, 'rollout', 'status', 'daemonset/netpol-agent', '--timeout=180s'];
      record(rollout, await cluster.kubectl(rollout, { timeoutMs: 190_000 }));
      const pods = await agentPods(cluster);
      assert.deepEqual(pods.map((p) => p.node).sort(), cluster.nodes.map((n) => n.name).sort(), 'one agent pod on each node');
      assert.ok(pods.every((p) => p.ready), 'every agent pod is ready');
    });

    test('the agent runs with only NET_ADMIN, in the node\'s network namespace, as the netpol-agent ServiceAccount', async () => {
      const pod = await agentPodOn(cluster, await nginxNode(cluster));
      assert.equal(pod.serviceAccountName, 'netpol-agent');
      // PID 1 of the container is the agent (bin/netpol-agent is a node script).
      const status = await agentExecOk(cluster, pod, ['cat', '/proc/1/status']);
      const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
      assert.match(field('Name'), /node/);
      const NET_ADMIN_ONLY = (1n << 12n).toString(16).padStart(16, '0');
      for (const set of ['CapEff', 'CapPrm', 'CapBnd']) assert.equal(field(set), NET_ADMIN_ONLY, `${set} of the agent`);
      for (const set of ['CapInh', 'CapAmb']) assert.equal(field(set), '0'.repeat(16), `${set} of the agent`);
      assert.equal(field('NoNewPrivs'), '1');
      assert.equal(field('Seccomp'), '2', 'the RuntimeDefault seccomp profile is a filter (mode 2)');
      assert.match(field('Uid'), /^0\s/);
      const inPod = (await agentExecOk(cluster, pod, ['readlink', '/proc/1/ns/net'])).trim();
      const node = (await run('readlink', [`/proc/${nodeNetnsPid(cluster, pod.node)}/ns/net`])).stdout.trim();
      assert.equal(inPod, node, 'hostNetwork: the agent is in the node\'s network namespace');
      // What the ClusterRole grants the ServiceAccount: reading the three kinds, nothing else.
      const sa = `--as=system:serviceaccount:${AGENT_NS}:netpol-agent`;
      for (const [verb, resource, allowed] of [['watch', 'pods', 'yes'], ['list', 'namespaces', 'yes'], ['watch', 'networkpolicies.networking.k8s.io', 'yes'],
        ['get', 'secrets', 'no'], ['create', 'pods', 'no'], ['list', 'nodes', 'no'], ['update', 'networkpolicies.networking.k8s.io', 'no']] as const) {
        const r = await cluster.kubectl(['auth', 'can-i', verb, resource, '-A', sa]);
        assert.equal(r.stdout.trim(), allowed, `can the agent ${verb} ${resource}?`);
      }
      transcript.push(`# agent pod ${pod.name}: ${['CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp', 'Uid'].map((f) => `${f} ${field(f).replace(/\s+/g, ' ')}`).join(', ')}; netns ${inPod}`);
    });

    test('two probe loops run against nginx from the other node: one pod without the label, one with access=true', async () => {
      const nginxOn = await nginxNode(cluster);
      const other = cluster.nodes.find((n) => n.name !== nginxOn)?.name;
      assert.ok(other !== undefined, `a node other than nginx's ${nginxOn}`);
      await startProber(cluster, DENIED_PROBER, other);
      await startProber(cluster, ALLOWED_PROBER, other, 'access=true');
      // Before the policy, both get through.
      for (const name of [DENIED_PROBER, ALLOWED_PROBER]) {
        await waitFor(async () => (await proberLog(cluster, name)).some((p) => p.exit === 0), 60_000, `${name} never reached nginx`);
      }
    });

    test('kubectl apply -f access-nginx; busybox without the label: wget is cut off', async () => {
      const args = ['apply', '-f', join(REPO_ROOT, 'manifests', 'examples', 'nginx-policy.yaml')];
      const r = record(args, await cluster.kubectl(args));
      appliedAt = Date.now();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /networkpolicy.networking.k8s.io\/access-nginx (created|configured)/);
      // Enforcement latency, from the apply returning: the probe loop's first timed-out wget (when it
      // started, from the kubelet's log timestamps), and the user's view: the first `kubectl run busybox`
      // that is cut off, from the apply to kubectl's exit.
      let denied: CommandResult | undefined;
      for (let attempt = 0; attempt < 10 && denied === undefined; attempt++) {
        const w = await busyboxWget(cluster);
        if (!/remote file exists/.test(w.stdout + w.stderr)) denied = w;
      }
      assert.ok(denied !== undefined, 'wget kept getting through after the policy was applied');
      const userSeen = Date.now() - appliedAt;
      // `timeout` kills the wget (exit 143, "Terminated"): it prints "Connecting to nginx (...)" and never
      // "download timed out", which only busybox's own -T would print.
      assert.equal(denied.code, 143, `exit ${denied.code}: ${denied.stdout}${denied.stderr}`);
      assert.match(denied.stdout + denied.stderr, /Connecting to nginx/);
      let probes: Probe[] = [];
      await waitFor(async () => (probes = await proberLog(cluster, DENIED_PROBER)).some((p) => p.exit !== 0 && p.start >= appliedAt - 1000), 30_000, `${DENIED_PROBER} never timed out`);
      const firstCut = probes.find((p) => p.exit !== 0 && p.start >= appliedAt - 1000);
      const lastThrough = probes.filter((p) => p.exit === 0 && firstCut !== undefined && p.start < firstCut.start).pop();
      assert.equal(firstCut?.exit, 143, 'a probe without the label failed otherwise than by timing out');
      const figure = `enforcement latency (apply returned -> first timed-out wget of the probe loop): ${(firstCut?.start ?? 0) - appliedAt} ms `
        + `(last wget through started at ${(lastThrough?.start ?? appliedAt) - appliedAt} ms); as a user sees it (apply -> first cut-off kubectl run busybox exits): ${userSeen} ms`;
      console.log(`# ${figure}`);
      transcript.push(`# ${figure}`);
    });

    test('kubectl run busybox --labels="access=true": "remote file exists"', async () => {
      const r = await busyboxWget(cluster, 'access=true');
      assert.match(r.stdout + r.stderr, /remote file exists/, `exit ${r.code}: ${r.stdout}${r.stderr}`);
      assert.equal(r.code, 0);
    });

    test('netpol-agent rules (its /rules) shows access-nginx, the nginx pod and the resolved peers', async () => {
      // The agent of nginx's node: its table isolates nginx.
      const text = ['-n', AGENT_NS, 'exec', (await agentPodOn(cluster, await nginxNode(cluster))).name, '--', 'netpol-agent', 'rules', '--verbose'];
      const shown = record(text, await cluster.kubectl(text));
      assert.equal(shown.code, 0, shown.stderr);
      const report = JSON.parse(await agentExecOk(cluster, await agentPodOn(cluster, await nginxNode(cluster)), ['netpol-agent', 'rules', '--verbose', '-o', 'json'])) as RulesJson;
      const nginx = report.pods.find((p) => p.pod.startsWith('default/nginx-'));
      assert.ok(nginx !== undefined, `no nginx pod in /rules: ${report.pods.map((p) => p.pod).join(', ')}`);
      assert.deepEqual(nginx.ips, [await podIp(cluster, 'default', '-l app=nginx')]);
      assert.equal(nginx.ingress.isolated, true);
      assert.deepEqual(nginx.ingress.isolatedBy, ['default/access-nginx']);
      const peers = nginx.ingress.rules.filter((r) => r.policy === 'default/access-nginx').flatMap((r) => r.resolved.flatMap((g) => g.addresses ?? []));
      const allowedIp = await podIp(cluster, 'default', ALLOWED_PROBER);
      const deniedIp = await podIp(cluster, 'default', DENIED_PROBER);
      assert.ok(peers.some((a) => a.startsWith(allowedIp)), `${ALLOWED_PROBER} (${allowedIp}) is not among the resolved peers ${peers.join(', ')}`);
      assert.ok(!peers.some((a) => a.startsWith(deniedIp)), `${DENIED_PROBER} (${deniedIp}) is among the resolved peers`);
      assert.ok(report.pods.every((p) => p.pod === nginx.pod || !p.ingress.isolated), 'only nginx is isolated');
    });

    test('figures: the agent pod\'s RSS and CPU on nginx\'s node (its /proc and the kubelet\'s stats)', async () => {
      const pod = await agentPodOn(cluster, await nginxNode(cluster));
      const sample = async (): Promise<{ rssKiB: number; hwmKiB: number; cpuTicks: number; uptime: number; started: number }> => {
        const out = await agentExecOk(cluster, pod, ['sh', '-c', 'cat /proc/1/status; echo; cat /proc/1/stat; cat /proc/uptime; getconf CLK_TCK']);
        const kib = (name: string): number => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm').exec(out)?.[1]);
        const lines = out.trimEnd().split('\n');
        const hz = Number(lines.at(-1));
        const stat = (lines.at(-3) ?? '').replace(/^.*\) /, '').split(' ');
        // Fields after the command: state is field 3, utime 14, stime 15, starttime 22.
        const ticks = (i: number): number => Number(stat[i - 3]);
        return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), cpuTicks: (ticks(14) + ticks(15)) / hz, uptime: Number(lines.at(-2)?.split(' ')[0]), started: ticks(22) / hz };
      };
      const a = await sample();
      await new Promise((r) => setTimeout(r, 10_000));
      const b = await sample();
      const idle = ((b.cpuTicks - a.cpuTicks) / (b.uptime - a.uptime)) * 100;
      const lifetime = (b.cpuTicks / (b.uptime - b.started)) * 100;
      const summary = JSON.parse(await cluster.kubectlOk(['get', '--raw', `/api/v1/nodes/${pod.node}/proxy/stats/summary`])) as StatsSummary;
      const agent = summary.pods.find((p) => p.podRef.namespace === AGENT_NS)?.containers?.find((c) => c.name === 'agent');
      const mib = (bytes: number | undefined): string => (bytes === undefined ? '?' : (bytes / 1048576).toFixed(1));
      const figure = `agent pod: RSS ${(b.rssKiB / 1024).toFixed(1)} MiB (peak ${(b.hwmKiB / 1024).toFixed(1)} MiB); CPU ${b.cpuTicks.toFixed(2)} s in its ${Math.round(b.uptime - b.started)} s (${lifetime.toFixed(1)} %), idle ${idle.toFixed(2)} % over 10 s; `
        + `kubelet: working set ${mib(agent?.memory?.workingSetBytes)} MiB, rss ${mib(agent?.memory?.rssBytes)} MiB, cpu ${((agent?.cpu?.usageNanoCores ?? NaN) / 1e6).toFixed(1)} millicores`;
      console.log(`# ${figure}`);
      transcript.push(`# ${figure}`);
      assert.ok(b.rssKiB > 0 && b.rssKiB < 1024 * 1024, 'RSS within the DaemonSet\'s 1 GiB limit');
    });

    test('a rolling update of the DaemonSet (new image tag) lets no denied connection through', async () => {
      const ds = ['-n', AGENT_NS, 'get', 'daemonset/netpol-agent', '-o', 'jsonpath={.spec.template.spec.containers[0].image}'];
      const image = (await cluster.kubectlOk(ds)).trim();
      const updated = `${image.replace(/:[^:/]*$/, '')}:e2e-rollout`;
      // The same archive under a second tag on each node: kubelet finds it in containerd and never pulls.
      for (const node of cluster.nodes) {
        const tagged = await run(join(node.dir, 'ctr'), ['images', 'tag', qualified(image), qualified(updated)]);
        assert.equal(tagged.code, 0, `${node.name}: ${tagged.stderr}`);
      }
      const before = await agentPods(cluster);
      const from = Date.now();
      const set = ['-n', AGENT_NS, 'set', 'image', 'daemonset/netpol-agent', `agent=${updated}`];
      assert.equal(record(set, await cluster.kubectl(set)).code, 0);
      const rollout = ['-n', AGENT_NS, 'rollout', 'status', 'daemonset/netpol-agent', '--timeout=180s'];
      const done = record(rollout, await cluster.kubectl(rollout, { timeoutMs: 190_000 }));
      assert.equal(done.code, 0, done.stderr);
      const after = await agentPods(cluster);
      assert.equal(after.length, cluster.nodes.length, 'one agent pod on each node after the update');
      for (const pod of after) {
        assert.ok(!before.some((b) => b.name === pod.name), `the DaemonSet replaced its pod on ${pod.node}`);
        assert.equal(pod.image, updated);
      }
      // Keep probing a while after the new agent is ready.
      await new Promise((r) => setTimeout(r, 5_000));
      const to = Date.now();
      const inWindow = (probes: Probe[]): Probe[] => probes.filter((p) => p.start >= from && p.start <= to);
      const denied = inWindow(await proberLog(cluster, DENIED_PROBER));
      const allowed = inWindow(await proberLog(cluster, ALLOWED_PROBER));
      const wrong = denied.filter((p) => p.exit === 0).length + allowed.filter((p) => p.exit !== 0).length;
      const figure = `rolling update ${before.map((p) => p.name).join(', ')} -> ${after.map((p) => p.name).join(', ')} (${Math.round((to - from) / 1000)} s with 5 s after it): `
        + `${denied.length} probes without the label (${denied.filter((p) => p.exit === 0).length} got through), `
        + `${allowed.length} with access=true (${allowed.filter((p) => p.exit !== 0).length} failed): ${wrong} wrong verdicts`;
      console.log(`# ${figure}`);
      transcript.push(`# ${figure}`);
      assert.ok(denied.length >= 3 && allowed.length >= 3, 'the probe loops ran during the update');
      assert.equal(wrong, 0);
    });

    test('uninstall: kubectl delete -k manifests/, then netpol-agent cleanup on the node leaves no nftables state of ours', async () => {
      const del = ['delete', '-k', join(REPO_ROOT, 'manifests'), '--wait=true', '--timeout=120s'];
      const deleted = record(del, await cluster.kubectl(del, { timeoutMs: 130_000 }));
      assert.equal(deleted.code, 0, deleted.stderr);
      // The table outlives its agent on purpose (restarts, rolling updates): enforcement goes on.
      for (const node of cluster.nodes) assert.match(await nodeTables(cluster, node.netnsPath), new RegExp(`table inet ${AGENT_TABLE}\\b`), node.name);
      // The documented uninstall, run as written in manifests/examples/README.md (its "Clean up" block that
      // runs `netpol-agent cleanup` on each node), with this cluster's kubectl first on PATH.
      const readme = readFileSync(join(REPO_ROOT, 'manifests', 'examples', 'README.md'), 'utf8');
      const snippet = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').find((block) => block.includes('"args": ["cleanup"]'));
      assert.ok(snippet !== undefined, 'manifests/examples/README.md documents no cleanup on each node');
      const bin = mkdtempSync(join(tmpdir(), 'npe2e-kubectl-'));
      try {
        symlinkSync(join(cluster.state, 'kubectl'), join(bin, 'kubectl'));
        const r = await run('bash', ['-euo', 'pipefail', '-c', `PATH=${bin}:$PATH\n${snippet}`], { timeoutMs: 180_000 });
        transcript.push('$ # the cleanup block of manifests/examples/README.md', snippet.trimEnd(), (r.stdout + r.stderr).trimEnd(), `(exit ${r.code})`);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`deleted table inet ${AGENT_TABLE}`));
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
      for (const node of cluster.nodes) {
        const ruleset = await cluster.inNetns('nft', ['list', 'ruleset'], { netnsPath: node.netnsPath });
        assert.equal(ruleset.code, 0, ruleset.stderr);
        assert.doesNotMatch(ruleset.stdout, new RegExp(AGENT_TABLE), `${node.name}'s ruleset still holds something of the agent's`);
        transcript.push(`$ nsenter --net=${node.netnsPath} nft list tables`, await nodeTables(cluster, node.netnsPath));
      }
      // With no agent and no table, the pod without the label gets through again.
      const since = Date.now();
      await waitFor(async () => (await proberLog(cluster, DENIED_PROBER)).some((p) => p.start >= since && p.exit === 0), 30_000, `${DENIED_PROBER} is still cut off`);
    });
  });
});

const AGENT_NS = 'netpol-agent';
const AGENT_TABLE = 'netpol_agent';
const DENIED_PROBER = 'prober';
const ALLOWED_PROBER = 'prober-access';

/** `kubectl exec` in an agent pod (its only container), rejecting on failure. */
function agentExecOk(cluster: Cluster, pod: AgentPod, command: string[]): Promise<string> {
  return cluster.kubectlOk(['-n', AGENT_NS, 'exec', pod.name, '--', ...command]);
}

interface AgentPod {
  name: string;
  node: string;
  image: string;
  ready: boolean;
  serviceAccountName: string;
}
/** The agent's pods that are not being deleted. */
async function agentPods(cluster: Cluster): Promise<AgentPod[]> {
  const list = JSON.parse(await cluster.kubectlOk(['-n', AGENT_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=netpol-agent', '-o', 'json'])) as {
    items: { metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName: string; serviceAccountName: string; containers: { image: string }[] }; status: { conditions?: { type: string; status: string }[] } }[];
  };
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined).map((pod) => ({
    name: pod.metadata.name,
    node: pod.spec.nodeName,
    image: pod.spec.containers[0]?.image ?? '',
    ready: pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    serviceAccountName: pod.spec.serviceAccountName,
  }));
}
async function agentPodOn(cluster: Cluster, node: string): Promise<AgentPod> {
  const on = (await agentPods(cluster)).filter((p) => p.node === node);
  assert.equal(on.length, 1, `one agent pod on ${node}, found ${on.map((p) => p.name).join(', ')}`);
  return on[0] as AgentPod;
}

/** The node the nginx pod runs on. */
async function nginxNode(cluster: Cluster): Promise<string> {
  const node = (await cluster.kubectlOk(['get', 'pods', '-l', 'app=nginx', '-o', 'jsonpath={.items[0].spec.nodeName}'])).trim();
  assert.notEqual(node, '', 'the nginx pod is scheduled');
  return node;
}

/** The IP of the pod named NAME, or of the first pod matching the label selector `-l SELECTOR`. */
async function podIp(cluster: Cluster, namespace: string, pod: string): Promise<string> {
  const args = pod.startsWith('-l ') ? ['get', 'pods', '-l', pod.slice(3), '-o', 'jsonpath={.items[0].status.podIP}'] : ['get', 'pod', pod, '-o', 'jsonpath={.status.podIP}'];
  const ip = (await cluster.kubectlOk(['-n', namespace, ...args])).trim();
  assert.notEqual(ip, '', `no pod IP for ${namespace} ${pod}`);
  return ip;
}

/** A PID in NODE's network namespace (its kubelet's), to compare namespaces by their /proc link. */
function nodeNetnsPid(cluster: Cluster, node: string): string {
  const found = cluster.nodes.find((n) => n.name === node);
  assert.ok(found !== undefined, `no node ${node} in the cluster`);
  return readFileSync(found.kubeletPidFile, 'utf8').trim();
}

async function nodeTables(cluster: Cluster, netnsPath: string): Promise<string> {
  const r = await cluster.inNetns('nft', ['list', 'tables'], { netnsPath });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** containerd's name for an image reference as kubelet resolves it (docker.io/library/ for bare names). */
function qualified(image: string): string {
  const first = image.split('/')[0] ?? '';
  if (!image.includes('/')) return `docker.io/library/${image}`;
  return first.includes('.') || first.includes(':') || first === 'localhost' ? image : `docker.io/${image}`;
}

/**
 * A long-running busybox pod on NODE probing nginx as the walkthrough does, `timeout 1 wget --spider nginx`,
 * every 0.1 s. It prints `start` before each wget and `exit N` after it; the kubelet's log timestamps say when.
 */
async function startProber(cluster: Cluster, name: string, node: string, labels?: string): Promise<void> {
  const loop = 'while true; do echo start; timeout 1 wget --spider nginx >/dev/null 2>&1; echo "exit $?"; sleep 0.1; done';
  const onNode = `--overrides=${JSON.stringify({ apiVersion: 'v1', spec: { nodeName: node } })}`;
  const args = ['run', name, ...(labels === undefined ? [] : [`--labels=${labels}`]), onNode, '--image=busybox:e2e', '--restart=Never', '--', 'sh', '-c', loop];
  assert.equal(record(args, await cluster.kubectl(args)).code, 0);
  await cluster.kubectlOk(['wait', `pod/${name}`, '--for=condition=Ready', '--timeout=120s'], { timeoutMs: 130_000 });
}

interface Probe {
  /** When the wget started (ms since the epoch, from the kubelet's timestamp of the `start` line). */
  start: number;
  /** wget's exit status: 0 through, 143 killed by timeout, another value another failure. */
  exit: number;
}
async function proberLog(cluster: Cluster, name: string): Promise<Probe[]> {
  const log = await cluster.kubectlOk(['logs', `pod/${name}`, '--timestamps'], { timeoutMs: 60_000 });
  const probes: Probe[] = [];
  let start: number | undefined;
  for (const line of log.split('\n')) {
    const m = /^(\S+)\s+(start|exit (\d+))$/.exec(line);
    if (m === null) continue;
    // RFC 3339 with nanoseconds: Date takes milliseconds.
    const at = Date.parse((m[1] ?? '').replace(/(\.\d{3})\d*/, '$1'));
    if (m[2] === 'start') start = at;
    else if (start !== undefined) {
      probes.push({ start, exit: Number(m[3]) });
      start = undefined;
    }
  }
  return probes;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, failure: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) assert.fail(failure);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface RulesJson {
  pods: {
    pod: string;
    ips: string[];
    ingress: { isolated: boolean; isolatedBy: string[]; rules: { policy: string; resolved: { addresses?: string[] }[] }[] };
  }[];
}

interface StatsSummary {
  pods: { podRef: { namespace: string; name: string }; containers?: { name: string; cpu?: { usageNanoCores?: number }; memory?: { workingSetBytes?: number; rssBytes?: number } }[] }[];
}
