// The upstream Kubernetes NetworkPolicy e2e specs (k8s.io/kubernetes v1.34.4 test/e2e/network/netpol, the
// "Netpol" specs CNI projects run in their CI) against the agent's DaemonSet in a real two-node cluster
// (test/e2e/cluster), then a control run that must fail: the same kind of specs with the agent removed and
// its table deleted, so the passes are the agent's doing and not the cluster's.
//
// Needs root, E2E_CLUSTER=1, E2E_AGENT_IMAGE (the agent image's docker-save archive) and E2E_UPSTREAM: the
// folder test/e2e/cluster/build-upstream.sh prints (e2e.test, ginkgo, the agnhost image); skips with the
// reason otherwise. E2E_UPSTREAM_PROCS (default 3) parallel ginkgo processes.
//   E2E_CLUSTER=1 E2E_AGENT_IMAGE=... E2E_UPSTREAM=... node --test build/test/e2e/upstream-netpol.test.js
//
// SCTPConnectivity specs are skipped: this kernel has no SCTP sockets. The "Feature" and "SCTP" words are not
// skipped: every Netpol spec is tagged [Feature:NetworkPolicy], and two TCP specs check isolation under
// SCTP policies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, REPO_ROOT, run, type CommandResult } from './cluster';

const ENABLED = process.env.E2E_CLUSTER === '1';
const AGENT_IMAGE = process.env.E2E_AGENT_IMAGE ?? '';
const UPSTREAM = process.env.E2E_UPSTREAM ?? '';
const PROCS = Number(process.env.E2E_UPSTREAM_PROCS ?? 3);
const SKIP = process.getuid?.() !== 0
  ? 'needs root (network namespaces, containerd, kubelet)'
  : !ENABLED
    ? 'real-cluster tier: run it with `npm run test:e2e` (E2E_CLUSTER=1)'
    : AGENT_IMAGE === '' || !existsSync(AGENT_IMAGE)
      ? `needs the agent's image: set E2E_AGENT_IMAGE to its docker-save archive (now ${AGENT_IMAGE === '' ? 'unset' : `${AGENT_IMAGE}, missing`})`
      : UPSTREAM === '' || !existsSync(join(UPSTREAM, '.complete'))
        ? `needs the upstream suite: set E2E_UPSTREAM to the folder test/e2e/cluster/build-upstream.sh prints (now ${UPSTREAM === '' ? 'unset' : `${UPSTREAM}, incomplete`})`
        : false;

const AGENT_NS = 'netpol-agent';
const AGENT_TABLE = 'netpol_agent';
const FOCUS = 'Netpol';
const SKIPPED = 'SCTPConnectivity';
/** The control run: specs that pass only if something enforces policies (deny), and one that passes anyway. */
const CONTROL_FOCUS = "should support a 'default-deny-ingress' policy|should support allow-all policy";

interface SpecReport {
  LeafNodeType: string;
  LeafNodeText: string;
  ContainerHierarchyTexts: string[] | null;
  State: string;
  RunTime: number;
  Failure?: { Message: string };
}
interface Spec {
  name: string;
  state: string;
  seconds: number;
  failure: string;
}
interface SuiteRun {
  result: CommandResult;
  specs: Spec[];
  seconds: number;
}

/**
 * e2e.test through ginkgo (PROCS processes), in the first node's network namespace (the API server at
 * 127.0.0.1:6443, kubectl of the cluster on PATH), with a JSON report: the specs whose text matches FOCUS.
 */
async function runSuite(cluster: Cluster, focus: string, report: string): Promise<SuiteRun> {
  const started = Date.now();
  const result = await run('nsenter', [`--net=${cluster.netnsPath}`, 'env', `PATH=${cluster.binDir}:${process.env.PATH ?? ''}`,
    join(UPSTREAM, 'ginkgo'), `--procs=${PROCS}`, `--focus=${focus}`, `--skip=${SKIPPED}`, '--timeout=90m', '--no-color', '--succinct',
    `--output-dir=${join(cluster.state, 'logs')}`, `--json-report=${report}`, join(UPSTREAM, 'e2e.test'), '--',
    `--kubeconfig=${cluster.kubeconfig}`, '--provider=skeleton', '--disable-log-dump=true'], { timeoutMs: 95 * 60_000 });
  const seconds = Math.round((Date.now() - started) / 1000);
  const path = join(cluster.state, 'logs', report);
  assert.ok(existsSync(path), `ginkgo wrote no report (exit ${result.code}): ${result.stderr.slice(-3000)}${result.stdout.slice(-3000)}`);
  const suites = JSON.parse(readFileSync(path, 'utf8')) as { SpecReports: SpecReport[] | null }[];
  const specs = suites.flatMap((s) => s.SpecReports ?? [])
    .filter((r) => r.LeafNodeType === 'It')
    .map((r) => ({ name: [...(r.ContainerHierarchyTexts ?? []), r.LeafNodeText].join(' '), state: r.State, seconds: r.RunTime / 1e9, failure: r.Failure?.Message ?? '' }))
    .filter((s) => s.name.includes(FOCUS));
  return { result, specs, seconds };
}

function counts(specs: Spec[]): string {
  const by = (state: string): number => specs.filter((s) => s.state === state).length;
  return `${by('passed')} passed, ${specs.filter((s) => s.state !== 'passed' && s.state !== 'skipped').length} failed, ${by('skipped')} skipped`;
}

describe('upstream Kubernetes Netpol e2e specs against the DaemonSet, two nodes', { skip: SKIP }, () => {
  let cluster: Cluster;
  const log = (line: string): void => console.log(`# ${line}`);

  before(async () => {
    cluster = await Cluster.start({ nodes: 2, images: [AGENT_IMAGE, join(UPSTREAM, 'agnhost-image.tar')], onLog: log });
  }, { timeout: 30 * 60_000 });

  after(async () => {
    await cluster?.stop();
  }, { timeout: 5 * 60_000 });

  test('kubectl apply -k manifests/: the agent runs on both nodes', async () => {
    await cluster.kubectlOk(['apply', '-k', join(REPO_ROOT, 'manifests')]);
    await cluster.kubectlOk(['-n', AGENT_NS, 'rollout', 'status', 'daemonset/netpol-agent', '--timeout=180s'], { timeoutMs: 190_000 });
    const nodes = (await cluster.kubectlOk(['-n', AGENT_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=netpol-agent', '-o', 'jsonpath={range .items[*]}{.spec.nodeName}{"\\n"}{end}'])).trim().split('\n').sort();
    assert.deepEqual(nodes, cluster.nodes.map((n) => n.name).sort());
  });

  test(`every ${FOCUS} spec but ${SKIPPED} passes (ginkgo, ${PROCS} processes)`, { timeout: 100 * 60_000 }, async () => {
    const { result, specs, seconds } = await runSuite(cluster, FOCUS, 'netpol-report.json');
    const failed = specs.filter((s) => s.state !== 'passed' && s.state !== 'skipped');
    const skipped = specs.filter((s) => s.state === 'skipped');
    log(`upstream Netpol e2e: ${counts(specs)} in ${seconds} s with ${PROCS} ginkgo processes`);
    for (const s of skipped) log(`  skipped: ${s.name}`);
    for (const s of failed) log(`  ${s.state}: ${s.name}: ${s.failure.slice(0, 2000)}`);
    const slowest = [...specs].sort((a, b) => b.seconds - a.seconds).slice(0, 3);
    log(`  slowest: ${slowest.map((s) => `${s.seconds.toFixed(0)} s ${s.name}`).join('; ')}`);
    assert.deepEqual(failed.map((s) => s.name), [], 'failed specs');
    assert.ok(skipped.every((s) => s.name.includes(SKIPPED)), `skipped beyond ${SKIPPED}: ${skipped.map((s) => s.name).join('; ')}`);
    assert.ok(specs.filter((s) => s.state === 'passed').length >= 40, `only ${counts(specs)}`);
    assert.equal(result.code, 0, `ginkgo exited ${result.code}: ${result.stdout.slice(-3000)}`);
  });

  test('control: with the agent removed and its table deleted, the deny specs fail and allow-all passes', { timeout: 40 * 60_000 }, async () => {
    await cluster.kubectlOk(['delete', '-k', join(REPO_ROOT, 'manifests'), '--wait=true', '--timeout=120s'], { timeoutMs: 130_000 });
    // The table outlives its agent on purpose (enforcement goes on): delete it on each node.
    for (const node of cluster.nodes) {
      const tables = await cluster.inNetns('nft', ['list', 'tables'], { netnsPath: node.netnsPath });
      if (tables.stdout.includes(`inet ${AGENT_TABLE}`)) {
        const r = await cluster.inNetns('nft', ['delete', 'table', 'inet', AGENT_TABLE], { netnsPath: node.netnsPath });
        assert.equal(r.code, 0, `${node.name}: ${r.stderr}`);
      }
    }
    const { result, specs: reported, seconds } = await runSuite(cluster, CONTROL_FOCUS, 'control-report.json');
    // The report lists every Netpol spec; those out of the focus (and the SCTP one) are skipped.
    const specs = reported.filter((s) => s.state !== 'skipped');
    log(`control run (no agent): ${counts(specs)} of the ${specs.length} specs run, in ${seconds} s`);
    for (const s of specs) log(`  ${s.state}: ${s.name}`);
    assert.notEqual(result.code, 0, 'the control run passed without the agent');
    const deny = specs.filter((s) => s.name.includes('default-deny-ingress'));
    const allow = specs.filter((s) => s.name.includes('allow-all policy'));
    assert.ok(deny.length >= 2, `the control ran the deny specs: ${specs.map((s) => s.name).join('; ')}`);
    assert.ok(deny.every((s) => s.state === 'failed'), 'every deny spec fails without the agent');
    assert.ok(allow.length === 1 && allow[0]?.state === 'passed', 'allow-all passes without the agent (the cluster itself works)');
  });
});
