// The upstream netpol e2e suite with real packets: for each topology (routed, bridged), a sandbox of
// nodes and pods as network namespaces; for each case, the dataplane programs real nftables (a full
// sync over the previous case's table, as a restarted agent would), each later step goes through the
// incremental path, and after every step the probes must match upstream's truth tables and the kernel
// must hold exactly what a fresh full sync would write.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../../src/dataplane';
import { FakeNft } from '../support/fake-nft';
import { viewFromSnapshot } from '../../src/dataplane/diff';
import { DataplaneLab } from '../../src/probe';
import { probeCases } from '../../src/probe';
import type { ObservedResult, ProbeFilter } from '../../src/probe';
import { objectKey } from '../../src/compiler';
import type { Topology } from '../../src/sandbox';
import { decodeObjects, eventsBetween } from '../../src/source';
import type { ClusterObjects } from '../../src/source';
import { baseCluster } from '../conformance/cluster';
import { compareTruthTables, formatReachabilityReport, pairKey } from '../conformance/reachability';
import { replay } from '../conformance/scenario';
import { caseFullName, upstreamCases } from '../conformance/upstream-cases';
import { IPV6_SUBSET, extraCases } from '../conformance/extra-cases';
import type { ConformanceCase } from '../conformance/upstream-cases';

const TIMEOUT_MS = 1000;

const tally = { probes: 0, observed: 0, sctpRuleLevel: 0 };

/** Checks each node's kernel table against a fresh full sync into the fake, and returns those fakes. */
async function assertKernelMatchesFreshSync(lab: DataplaneLab, nodes: readonly string[], where: string): Promise<Map<string, FakeNft>> {
  const fakes = new Map<string, FakeNft>();
  for (const node of nodes) {
    const compiler = lab.compiler(node);
    const backend = lab.backend(node);
    assert.ok(compiler && backend);
    const fake = new FakeNft(backend.table);
    fakes.set(node, fake);
    await new Dataplane(fake).sync(compiler.elements());
    const [kernel, fresh] = [await backend.list(), await fake.list()];
    assert.deepEqual(kernel === null ? null : viewFromSnapshot(kernel), fresh === null ? null : viewFromSnapshot(fresh), `${where}: kernel of ${node} differs from a fresh full sync`);
  }
  return fakes;
}

/** The fake's evaluator, over the same tables, gives the verdict the kernel gave each real packet. */
function assertFakeAgreesWithPackets(fakes: ReadonlyMap<string, FakeNft>, objects: ClusterObjects, filter: ProbeFilter, results: readonly ObservedResult[], where: string): void {
  const cases = probeCases(objects, filter);
  const nodeOf = new Map(objects.pods.map((p) => [objectKey(p), p.nodeName]));
  const disagree: string[] = [];
  results.forEach((r, i) => {
    const k = cases[i];
    assert.ok(k !== undefined && k.from === r.from && k.to === r.to && k.port === r.port);
    if (!r.observed || k.from === k.to) return;
    const packet = { saddr: k.fromIp, daddr: k.toIp, protocol: k.protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp', dport: k.port, ct: 'new' as const, hook: 'forward' as const };
    const [src, dst] = [fakes.get(nodeOf.get(k.from) ?? ''), fakes.get(nodeOf.get(k.to) ?? '')];
    assert.ok(src !== undefined && dst !== undefined);
    const fakeAllows = src.evaluate(packet) === 'accept' && (src === dst || dst.evaluate(packet) === 'accept');
    if (fakeAllows !== r.allowed) disagree.push(`${k.from} -> ${k.to} ${k.protocol}/${k.port}: kernel ${r.outcome}, fake ${fakeAllows ? 'accept' : 'drop'}`);
  });
  assert.deepEqual(disagree, [], `${where}: the fake's evaluator disagrees with real packets`);
}

function runCase(lab: () => DataplaneLab, c: ConformanceCase, family: 4 | 6): () => Promise<void> {
  return async () => {
    const cluster = baseCluster({ dualStack: family === 6 });
    let prev: ClusterObjects | null = null;
    for (const state of replay(c, cluster)) {
      const next = decodeObjects(state.objects, c.name);
      if (prev === null) await lab().program(eventsBetween(null, next));
      else await lab().update(eventsBetween(prev, next));
      prev = next;
      const fakes = await assertKernelMatchesFreshSync(lab(), cluster.nodes, `step ${state.index + 1}`);
      for (const probe of state.step.probes) {
        const filter = { port: probe.port, protocol: probe.protocol, family };
        const results: ObservedResult[] = await lab().observe(next, filter, TIMEOUT_MS);
        assertFakeAgreesWithPackets(fakes, next, filter, results, `step ${state.index + 1} ${probe.protocol}/${probe.port} IPv${family}`);
        const observed = new Map(results.map((r) => [pairKey(r.from, r.to), r.allowed]));
        tally.probes += results.length;
        tally.observed += results.filter((r) => r.observed).length;
        tally.sctpRuleLevel += results.filter((r) => !r.observed).length;
        const unexpected = results.filter((r) => r.observed !== (r.protocol !== 'SCTP') || r.outcome === 'error');
        assert.deepEqual(unexpected.map((r) => `${r.from}->${r.to} ${r.outcome}: ${r.reason}`), [], 'every TCP/UDP probe is a real packet, SCTP is reported skipped');
        const cmp = compareTruthTables(probe.expected, observed, probe.ignored);
        assert.equal(cmp.wrong.length, 0, `step ${state.index + 1} "${state.step.description}" ${probe.protocol}/${probe.port} IPv${family}:\n${formatReachabilityReport(probe.expected, observed, probe.ignored)}`);
      }
    }
  };
}

for (const topology of ['routed', 'bridged'] as Topology[]) {
  for (const family of [4, 6] as const) {
    const cases = [...upstreamCases, ...extraCases].filter((c) => c.ipFamilies.includes(family) && (family === 4 || IPV6_SUBSET.includes(c.name)));
    describe(`upstream netpol conformance with real packets (${topology}, IPv${family})`, () => {
      let lab: DataplaneLab | null = null;
      before(async () => {
        const base = baseCluster({ dualStack: family === 6 });
        lab = await DataplaneLab.create(decodeObjects([...base.namespaces, ...base.pods], 'base cluster'), topology, 'conf');
      });
      after(async () => { await lab?.destroy(); });
      for (const c of cases) test(caseFullName(c), runCase(() => lab as DataplaneLab, c, family));
    });
  }
}

after(() => {
  console.log(`# dataplane conformance: ${tally.probes} probes, ${tally.observed} observed with real packets, ${tally.sctpRuleLevel} SCTP checked at rule level (no SCTP sockets in this kernel)`);
});
