// The docs' "Declare Network Policy" walkthrough, verbatim, with the real kubectl in a real one-node
// cluster (test/e2e/cluster: etcd, kube-apiserver, controller-manager, scheduler, kubelet on containerd and
// runc with the bridge CNI, kube-proxy in nftables mode, CoreDNS). Needs root and the build of
// test/e2e/cluster/build.sh (about 12 min the first time, cached afterwards). Run with
//   npm run test:e2e
// The policy half installs the agent with `kubectl apply -k manifests/` from the image named by
// E2E_AGENT_IMAGE: the path of its docker-save archive, or `build` to make it with scripts/image/build.sh
// (the repository's Dockerfile; the archive's tag is the one manifests/ references).
//
// The docs run `wget --spider --timeout=1 nginx`; Debian's busybox (our busybox:e2e) has no --timeout
// and segfaults on -T, so each run is `timeout 1 wget --spider nginx`: same one-second bound, and a
// timed-out wget is killed (exit 143) instead of printing "download timed out". And the docs type the
// command in an interactive shell (`-ti ... -- /bin/sh`); run non-interactively, a one-second command often
// ends before kubectl attaches, so each run adds --restart=Never: kubectl then shows the finished pod's
// output from its log and exits with its exit code (with the default policy it printed nothing, exit 0).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseAllDocuments } from 'yaml';
import { join } from 'node:path';
import { Cluster, REPO_ROOT, run, type CommandResult } from './cluster';

const ENABLED = process.env.E2E_CLUSTER === '1';
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, containerd, kubelet)' : !ENABLED ? 'real-cluster tier: run it with `npm run test:e2e` (E2E_CLUSTER=1)' : false;

const KUSTOMIZATION = join(REPO_ROOT, 'manifests', 'kustomization.yaml');
const MANIFESTS_SKIP = existsSync(KUSTOMIZATION) ? false : `needs the agent's manifests: ${KUSTOMIZATION} is absent`;
const IMAGE_BUILD_SCRIPT = join(REPO_ROOT, 'scripts', 'image', 'build.sh');
const AGENT_IMAGE = process.env.E2E_AGENT_IMAGE ?? '';
const AGENT_SKIP = !existsSync(KUSTOMIZATION)
  ? `the policy half needs the agent's manifests: ${KUSTOMIZATION} is absent`
  : AGENT_IMAGE === 'build'
    ? existsSync(IMAGE_BUILD_SCRIPT) ? false : `E2E_AGENT_IMAGE=build needs ${IMAGE_BUILD_SCRIPT}, which is absent`
    : AGENT_IMAGE === '' || !existsSync(AGENT_IMAGE)
      ? `the policy half needs the agent's image: set E2E_AGENT_IMAGE to its docker-save archive, or to \`build\` (now ${AGENT_IMAGE === '' ? 'unset' : `${AGENT_IMAGE}, missing`})`
      : false;

/** The agent's image archive: the given one, or the one scripts/image/build.sh makes (its stdout's last line). */
async function agentImageArchive(onLog: (line: string) => void): Promise<string> {
  if (AGENT_IMAGE !== 'build') return AGENT_IMAGE;
  const started = Date.now();
  const built = await run('bash', [IMAGE_BUILD_SCRIPT], { timeoutMs: 40 * 60_000 });
  if (built.code !== 0) throw new Error(`${IMAGE_BUILD_SCRIPT} failed (exit ${built.code}): ${built.stderr.slice(-3000)}`);
  onLog(`agent image built in ${Math.round((Date.now() - started) / 1000)} s`);
  return built.stdout.trim().split('\n').pop() ?? '';
}

// The docs' policy (kubernetes.io examples/service/networking/nginx-policy.yaml), for a checkout whose
// manifests/examples lacks the same file.
const DOCS_POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: access-nginx
spec:
  podSelector:
    matchLabels:
      app: nginx
  ingress:
  - from:
    - podSelector:
        matchLabels:
          access: "true"
`;

const WGET = ['timeout', '1', 'wget', '--spider', 'nginx'];
const CONCLUSIVE = /Connecting to nginx|remote file exists/;
const transcript: string[] = [];

function record(args: string[], r: CommandResult): CommandResult {
  transcript.push(`$ kubectl ${args.join(' ')}`, (r.stdout + r.stderr).trimEnd(), `(exit ${r.code})`);
  return r;
}

/**
 * `kubectl run busybox --rm -i [--labels=...] --image=busybox:e2e --restart=Never -- timeout 1 wget --spider nginx`.
 * kubectl attaches once it sees the pod running; output written before that is lost (kubectl shows the log
 * instead only if the pod has already finished), and it happens here. wget prints "Connecting to nginx"
 * first and "remote file exists" last, so a run showing neither lost its output and is no verdict: it is
 * run again (each run is in the transcript). A denied run shows the first line only.
 */
async function busyboxWget(cluster: Cluster, labels?: string): Promise<CommandResult> {
  const args = ['run', 'busybox', '--rm', '-i', ...(labels === undefined ? [] : [`--labels=${labels}`]), '--image=busybox:e2e', '--restart=Never', '--', ...WGET];
  let r = record(args, await cluster.kubectl(args, { timeoutMs: 120_000 }));
  for (let attempt = 1; attempt < 5 && !CONCLUSIVE.test(r.stdout + r.stderr); attempt++) {
    r = record(args, await cluster.kubectl(args, { timeoutMs: 120_000 }));
  }
  assert.match(r.stdout + r.stderr, CONCLUSIVE, 'five runs in a row lost their output');
  return r;
}

describe('docs walkthrough in a real cluster', { skip: SKIP }, () => {
  let cluster: Cluster;

  before(async () => {
    const onLog = (line: string): void => console.log(`# ${line}`);
    cluster = await Cluster.start({ images: AGENT_SKIP === false ? [await agentImageArchive(onLog)] : [], onLog });
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
  });

  test('busybox reaches the nginx Service by name (CoreDNS, kube-proxy): "remote file exists"', async () => {
    const r = await busyboxWget(cluster);
    assert.match(r.stdout + r.stderr, /remote file exists/, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0);
  });

  test('every manifest in manifests/ passes kubectl apply --dry-run=server', { skip: MANIFESTS_SKIP }, async () => {
    // Server-side validation of namespaced objects needs their namespace to exist: create those first.
    for (const dir of [join(REPO_ROOT, 'manifests'), join(REPO_ROOT, 'manifests', 'examples')]) {
      if (!existsSync(join(dir, 'kustomization.yaml'))) continue;
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
    let workdir: string;
    before(() => {
      workdir = mkdtempSync(join(tmpdir(), 'npe2e-walkthrough-'));
    });
    after(() => rmSync(workdir, { recursive: true, force: true }));

    test('kubectl apply -k manifests/: every agent DaemonSet becomes ready', async () => {
      const args = ['apply', '-k', join(REPO_ROOT, 'manifests')];
      const r = record(args, await cluster.kubectl(args));
      assert.equal(r.code, 0, r.stderr);
      const daemonsets = (await cluster.kubectlOk(['get', 'daemonsets', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}']))
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('kube-system/'));
      assert.notEqual(daemonsets.length, 0, 'manifests/ created no DaemonSet');
      for (const ds of daemonsets) {
        const [ns, name] = ds.split('/') as [string, string];
        await cluster.kubectlOk(['rollout', 'status', `daemonset/${name}`, '-n', ns, '--timeout=120s'], { timeoutMs: 130_000 });
      }
    });

    test('kubectl apply -f access-nginx; busybox without the label: wget is cut off', async () => {
      const examples = join(REPO_ROOT, 'manifests', 'examples', 'nginx-policy.yaml');
      const file = existsSync(examples) ? examples : join(workdir, 'nginx-policy.yaml');
      if (file !== examples) writeFileSync(file, DOCS_POLICY);
      assert.match(readFileSync(file, 'utf8'), /name: access-nginx/);
      const args = ['apply', '-f', file];
      const applied = Date.now();
      const r = record(args, await cluster.kubectl(args));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /networkpolicy.networking.k8s.io\/access-nginx (created|configured)/);
      // The user's view of enforcement latency: from the apply to the first wget that is cut off.
      let denied: CommandResult | undefined;
      for (let attempt = 0; attempt < 10 && denied === undefined; attempt++) {
        const w = await busyboxWget(cluster);
        if (!/remote file exists/.test(w.stdout + w.stderr)) denied = w;
      }
      assert.ok(denied !== undefined, 'wget kept getting through after the policy was applied');
      console.log(`# enforcement latency seen by a user (apply -> first cut-off wget): ${Date.now() - applied} ms`);
      assert.notEqual(denied.code, 0);
    });

    test('kubectl run busybox --labels="access=true": "remote file exists"', async () => {
      const r = await busyboxWget(cluster, 'access=true');
      assert.match(r.stdout + r.stderr, /remote file exists/, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    });
  });
});
