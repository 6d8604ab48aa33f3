// The upstream netpol e2e cases (and ours, extra-cases.ts) through the real API server: namespaces and
// pods are created through the API and run by the sandbox kubelet on two sandbox nodes, each step's
// policies are created, replaced and deleted and its labels patched through the API, and two real
// `netpol-agent run` processes (one per node, ServiceAccount token of manifests/base/rbac.yaml) enforce them.
// Verdicts are real packets between pod namespaces, across nodes and within one, over IPv4 (every case)
// and IPv6 (a subset); SCTP probes are left to the tiers that check SCTP at rule level (no SCTP sockets).
// Convergence: after each step's writes, the probes are repeated until they match upstream's truth table,
// for at most CONVERGENCE_BOUND_MS; a mismatch after that fails the case.
//   API_TIER=1 node --test build/test/e2e/api/conformance.api-test.js   (root; `npm run test:api`)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Protocol } from '../../../src/api';
import { baseCluster, type KubeObject as CaseObject } from '../../conformance/cluster';
import { compareTruthTables, formatReachabilityReport, pairKey } from '../../conformance/reachability';
import { caseFullName, upstreamCases, type ConformanceCase, type ProbeSpec } from '../../conformance/upstream-cases';
import { IPV6_SUBSET, extraCases } from '../../conformance/extra-cases';
import { IP_ADDRS_ANNOTATION } from '../../support/api-tier/sandbox-kubelet';
import { pathOf, type KubeObject } from '../../support/api-tier/kube';
import { Tier } from '../../support/api-tier/tier';

const SKIP = process.env['API_TIER'] !== '1' ? 'set API_TIER=1 (npm run test:api): starts a real control plane' : process.getuid?.() !== 0 ? 'needs root' : false;
const CONVERGENCE_BOUND_MS = 10_000;
const PROBE_TIMEOUT_MS = 700;

const cluster = baseCluster({ dualStack: true });
const tally = { cases: 0, steps: 0, probes: 0, sctpSpecsSkipped: 0, retries: 0, maxConvergenceMs: 0 };
let tier: Tier;

function labelsPatch(labels: Record<string, string> | undefined): unknown {
  return [{ op: 'replace', path: '/metadata/labels', value: labels ?? {} }];
}

/** Applies one object of a step the way a user would: policies created or replaced, labels patched. */
async function applyObject(o: CaseObject): Promise<void> {
  const m = o.metadata;
  if (o.kind === 'NetworkPolicy') await tier.kube.apply(pathOf('NetworkPolicy', m.namespace), o as unknown as KubeObject);
  else if (o.kind === 'Namespace') await tier.kube.patch(pathOf('Namespace', undefined, m.name), labelsPatch(m.labels), 'json');
  else await tier.kube.patch(pathOf('Pod', m.namespace, m.name), labelsPatch(m.labels), 'json');
}

async function probeOnce(spec: ProbeSpec, family: 4 | 6): Promise<Map<string, boolean>> {
  const pairs = cluster.podKeys.flatMap((from) => cluster.podKeys.map((to) => ({ from, to })));
  const results = await tier.sandbox.probe(pairs.map(({ from, to }) => ({ from, toIp: cluster.podIp(to, family), port: spec.port, protocol: spec.protocol, timeoutMs: PROBE_TIMEOUT_MS })));
  tally.probes += results.length;
  const errors = results.filter((r) => r.outcome === 'error' || r.outcome === 'skipped');
  assert.deepEqual(errors.map((r) => `${r.req.from}->${r.req.toIp}: ${r.detail}`), [], 'every probe ran');
  return new Map(results.map((r, i) => [pairKey(pairs[i]?.from ?? '', pairs[i]?.to ?? ''), r.outcome === 'connected' || r.outcome === 'refused']));
}

/** Probes until the truth table holds, for at most the convergence bound. */
async function expectConverged(spec: ProbeSpec, family: 4 | 6, what: string): Promise<void> {
  const start = Date.now();
  for (let round = 0; ; round++) {
    const observed = await probeOnce(spec, family);
    const cmp = compareTruthTables(spec.expected, observed, spec.ignored);
    if (cmp.wrong.length === 0 && cmp.missing.length === 0) {
      tally.maxConvergenceMs = Math.max(tally.maxConvergenceMs, Date.now() - start);
      return;
    }
    if (Date.now() - start > CONVERGENCE_BOUND_MS) {
      const rules = await Promise.all(tier.options.nodes.map(async (n) => `${n}: ${JSON.stringify((await tier.rules(n)).sync)}`));
      assert.fail(`${what} ${spec.protocol}/${spec.port} IPv${family}: not converged within ${CONVERGENCE_BOUND_MS} ms\n${formatReachabilityReport(spec.expected, observed, spec.ignored)}\n${rules.join('\n')}`);
    }
    tally.retries++;
  }
}

const allAllowed = (port: number, protocol: Protocol): ProbeSpec => ({
  port,
  protocol,
  expected: new Map(cluster.podKeys.flatMap((f) => cluster.podKeys.map((t) => [pairKey(f, t), true] as [string, boolean]))),
  ignored: new Set(),
});

/** Back to the base cluster: no policies, base labels; proven by every pair connecting. */
async function reset(touched: Set<string>, family: 4 | 6): Promise<void> {
  for (const ns of ['x', 'y', 'z']) await tier.kube.call('DELETE', pathOf('NetworkPolicy', ns));
  for (const key of touched) {
    const [kind, ns, name] = key.split('|') as [string, string, string];
    if (kind === 'Namespace') await tier.kube.patch(pathOf('Namespace', undefined, name), labelsPatch(cluster.namespace(name).metadata.labels), 'json');
    else await tier.kube.patch(pathOf('Pod', ns, name), labelsPatch(cluster.pod(`${ns}/${name}`).metadata.labels), 'json');
  }
  touched.clear();
  await expectConverged(allAllowed(80, 'TCP'), family, 'reset to no policies');
}

function runCase(c: ConformanceCase, family: 4 | 6, touched: Set<string>): () => Promise<void> {
  return async () => {
    await reset(touched, family);
    const steps = c.build(cluster);
    for (const [i, step] of steps.entries()) {
      for (const o of step.apply ?? []) {
        if (o.kind !== 'NetworkPolicy') touched.add(`${o.kind}|${o.metadata.namespace ?? ''}|${o.metadata.name}`);
        await applyObject(o);
      }
      for (const d of step.delete ?? []) await tier.kube.delete(d.kind === 'NetworkPolicy' ? pathOf('NetworkPolicy', d.namespace, d.name) : pathOf(d.kind, d.namespace, d.name));
      tally.steps++;
      for (const probe of step.probes) {
        if (probe.protocol === 'SCTP') {
          tally.sctpSpecsSkipped++;
          continue;
        }
        await expectConverged(probe, family, `step ${i + 1} "${step.description}"`);
      }
    }
    tally.cases++;
  };
}

describe('upstream netpol conformance through the real API server (2 sandbox nodes, 2 agents)', { skip: SKIP }, () => {
  const touched = new Set<string>();
  before(async () => {
    tier = await Tier.start({ nodes: ['node-1', 'node-2'], resyncPeriod: '5m', onLog: (l) => console.log(`# ${l}`) });
    for (const ns of cluster.namespaces) await tier.kube.create(pathOf('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.metadata.name, labels: ns.metadata.labels ?? {} } });
    // Pods are created unbound, then bound to their node as the scheduler would (the binding subresource).
    for (const p of cluster.pods) {
      const ns = p.metadata.namespace;
      await tier.kube.create(pathOf('Pod', ns), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.metadata.name, namespace: ns, labels: p.metadata.labels ?? {}, annotations: { [IP_ADDRS_ANNOTATION]: JSON.stringify(p.status.podIPs.map((x) => x.ip)) } },
        spec: { terminationGracePeriodSeconds: 0, containers: p.spec.containers },
      });
      await tier.kube.create(`${pathOf('Pod', ns, p.metadata.name)}/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name: p.metadata.name, namespace: ns }, target: { apiVersion: 'v1', kind: 'Node', name: p.spec.nodeName } });
    }
    for (const key of cluster.podKeys) await tier.kubelet.whenRunning(key);
  });
  after(async () => {
    console.log(`# api conformance: ${tally.cases} cases, ${tally.steps} steps, ${tally.probes} probes (real packets), ${tally.retries} probe rounds repeated while converging (longest convergence ${tally.maxConvergenceMs} ms, bound ${CONVERGENCE_BOUND_MS} ms), ${tally.sctpSpecsSkipped} SCTP probe specs left to the rule-level tiers`);
    await tier?.stop();
  });

  test('the pods run on their nodes with the addresses the kubelet reported', async () => {
    for (const key of cluster.podKeys) {
      const [ns, name] = key.split('/') as [string, string];
      const pod = await tier.kube.get<{ spec: { nodeName: string }; status: { phase: string; podIPs: { ip: string }[]; conditions: { type: string; status: string }[] } }>(pathOf('Pod', ns, name));
      assert.equal(pod.spec.nodeName, cluster.nodeOf(key));
      assert.equal(pod.status.phase, 'Running');
      assert.deepEqual(pod.status.podIPs.map((x) => x.ip), [cluster.podIp(key, 4), cluster.podIp(key, 6)]);
      assert.ok(pod.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
    }
    for (const node of tier.options.nodes) {
      const rules = await tier.rules(node);
      assert.deepEqual(rules.pods.map((p) => p.pod).sort(), cluster.podKeys.filter((k) => cluster.nodeOf(k) === node).sort(), `${node}'s agent sees its local pods`);
    }
  });

  for (const family of [4, 6] as const) {
    const cases = [...upstreamCases, ...extraCases].filter((c) => c.ipFamilies.includes(family) && (family === 4 || IPV6_SUBSET.includes(c.name)));
    for (const c of cases) test(`IPv${family}: ${caseFullName(c)}`, runCase(c, family, touched));
  }
});
