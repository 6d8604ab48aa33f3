// Self-check of the upstream conformance data (test/conformance/): every case
// builds, every truth table is complete, every object is well-formed.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type BaseCluster,
  type KubeObject,
  type LabelSelectorObject,
  type NetworkPolicyObject,
  type NetworkPolicyPeerObject,
  type NetworkPolicyPortObject,
  METADATA_NAME_LABEL_KEY,
  NAMESPACE_LABEL_KEY,
  POD_KEYS,
  baseCluster,
  portName,
} from '../conformance/cluster';
import {
  Reachability,
  compareTruthTables,
  formatReachabilityReport,
  isLoopback,
  loopbackPairs,
  pairKey,
  prettyPrintTruthTable,
} from '../conformance/reachability';
import {
  CONTEXT_SCTP,
  CONTEXT_TCP,
  CONTEXT_UDP,
  type ConformanceCase,
  type ProbeSpec,
  type Step,
  caseFullName,
  skippedUpstreamCases,
  upstreamCases,
} from '../conformance/upstream-cases';

const clusters: BaseCluster[] = [baseCluster({ dualStack: false }), baseCluster({ dualStack: true })];
const ALL_PAIRS = POD_KEYS.flatMap((f) => POD_KEYS.map((t) => pairKey(f, t)));

function findCase(context: string, name: string): ConformanceCase {
  const c = upstreamCases.find((x) => x.context === context && x.name === name);
  assert.ok(c, `case not found: ${context} > ${name}`);
  return c;
}

function blocked(p: ProbeSpec): string[] {
  return [...p.expected].filter(([k, v]) => !v && !isLoopback(k)).map(([k]) => k).sort();
}

function validSelector(sel: LabelSelectorObject | undefined, where: string): void {
  assert.ok(sel !== undefined && typeof sel === 'object', `${where}: selector must be an object`);
  for (const key of Object.keys(sel)) assert.ok(['matchLabels', 'matchExpressions'].includes(key), `${where}: unknown key ${key}`);
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    assert.equal(typeof k, 'string');
    assert.equal(typeof v, 'string', `${where}: label value`);
  }
  for (const req of sel.matchExpressions ?? []) {
    assert.ok(['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(req.operator), `${where}: operator ${req.operator}`);
    if (req.operator === 'In' || req.operator === 'NotIn') assert.ok((req.values ?? []).length > 0, `${where}: values`);
  }
}

function validCidr(cidr: string, where: string): void {
  const m = /^([0-9.]+|[0-9a-f:]+)\/(\d+)$/.exec(cidr);
  assert.ok(m, `${where}: bad CIDR ${cidr}`);
  const v6 = (m[1] as string).includes(':');
  const prefix = Number(m[2]);
  assert.ok(prefix >= 0 && prefix <= (v6 ? 128 : 32), `${where}: prefix ${cidr}`);
  if (!v6) {
    const octets = (m[1] as string).split('.').map(Number);
    assert.equal(octets.length, 4);
    const value = octets.reduce((a, o) => a * 256 + o, 0);
    const hostBits = 32 - prefix;
    assert.equal(value % 2 ** hostBits, 0, `${where}: ${cidr} has host bits set`);
  }
}

function validPeer(peer: NetworkPolicyPeerObject, where: string): void {
  const keys = Object.keys(peer);
  assert.ok(keys.length > 0, `${where}: empty peer`);
  if (peer.ipBlock !== undefined) {
    assert.deepEqual(keys, ['ipBlock'], `${where}: ipBlock must stand alone`);
    validCidr(peer.ipBlock.cidr, where);
    for (const e of peer.ipBlock.except ?? []) validCidr(e, `${where} except`);
  } else {
    if (peer.podSelector !== undefined) validSelector(peer.podSelector, `${where}.podSelector`);
    if (peer.namespaceSelector !== undefined) validSelector(peer.namespaceSelector, `${where}.namespaceSelector`);
  }
}

function validPort(port: NetworkPolicyPortObject, where: string): void {
  if (port.protocol !== undefined) assert.ok(['TCP', 'UDP', 'SCTP'].includes(port.protocol), `${where}: protocol`);
  if (typeof port.port === 'number') assert.ok(port.port >= 1 && port.port <= 65535, `${where}: port`);
  if (typeof port.port === 'string') assert.match(port.port, /^serve-8[01]-(tcp|udp|sctp)$/, `${where}: named port`);
  assert.equal(port.endPort, undefined, `${where}: upstream never uses endPort in traffic tests`);
}

function validPolicy(p: NetworkPolicyObject, where: string): void {
  assert.equal(p.apiVersion, 'networking.k8s.io/v1', `${where}: apiVersion`);
  assert.ok(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.metadata.name) && p.metadata.name.length <= 63, `${where}: name ${p.metadata.name}`);
  assert.ok(['x', 'y', 'z'].includes(p.metadata.namespace), `${where}: namespace`);
  validSelector(p.spec.podSelector, `${where}.podSelector`);
  const types = p.spec.policyTypes ?? [];
  assert.ok(types.length > 0, `${where}: policyTypes set explicitly (upstream always sets them)`);
  assert.equal(new Set(types).size, types.length, `${where}: duplicate policyTypes`);
  for (const t of types) assert.ok(t === 'Ingress' || t === 'Egress', `${where}: policyType ${t}`);
  if (p.spec.ingress !== undefined) assert.ok(types.includes('Ingress'), `${where}: ingress rules without Ingress type`);
  if (p.spec.egress !== undefined) assert.ok(types.includes('Egress'), `${where}: egress rules without Egress type`);
  (p.spec.ingress ?? []).forEach((r, i) => {
    (r.from ?? []).forEach((peer, j) => validPeer(peer, `${where}.ingress[${i}].from[${j}]`));
    (r.ports ?? []).forEach((port, j) => validPort(port, `${where}.ingress[${i}].ports[${j}]`));
  });
  (p.spec.egress ?? []).forEach((r, i) => {
    (r.to ?? []).forEach((peer, j) => validPeer(peer, `${where}.egress[${i}].to[${j}]`));
    (r.ports ?? []).forEach((port, j) => validPort(port, `${where}.egress[${i}].ports[${j}]`));
  });
}

function validObject(o: KubeObject, where: string): void {
  switch (o.kind) {
    case 'NetworkPolicy':
      validPolicy(o, where);
      break;
    case 'Namespace':
      assert.equal(o.apiVersion, 'v1');
      assert.equal(o.metadata.labels?.[METADATA_NAME_LABEL_KEY], o.metadata.name, `${where}: metadata.name label kept`);
      break;
    case 'Pod':
      assert.equal(o.apiVersion, 'v1');
      assert.ok(POD_KEYS.includes(`${o.metadata.namespace}/${o.metadata.name}`), `${where}: pod of the base cluster`);
      assert.equal(o.metadata.labels?.['pod'], o.metadata.name, `${where}: pod label kept`);
      break;
    default: {
      const never: never = o;
      assert.fail(`${where}: unexpected object ${JSON.stringify(never)}`);
    }
  }
}

describe('conformance base cluster', () => {
  for (const cluster of clusters) {
    const label = cluster.dualStack ? 'dual-stack' : 'IPv4';
    it(`${label}: 3 namespaces and 9 running pods, labelled like upstream`, () => {
      assert.deepEqual(cluster.podKeys, ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c', 'z/a', 'z/b', 'z/c']);
      assert.deepEqual(cluster.namespaces.map((n) => n.metadata.name), ['x', 'y', 'z']);
      for (const ns of cluster.namespaces) {
        assert.equal(ns.apiVersion, 'v1');
        assert.equal(ns.kind, 'Namespace');
        assert.deepEqual(ns.metadata.labels, { [NAMESPACE_LABEL_KEY]: ns.metadata.name, [METADATA_NAME_LABEL_KEY]: ns.metadata.name });
      }
      assert.equal(cluster.pods.length, 9);
      for (const pod of cluster.pods) {
        const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
        assert.equal(pod.kind, 'Pod');
        assert.deepEqual(pod.metadata.labels, { pod: pod.metadata.name });
        assert.equal(pod.status.phase, 'Running');
        assert.equal(pod.spec.containers.length, 1);
        const ports = (pod.spec.containers[0]?.ports ?? []).map((p) => `${p.name}=${p.containerPort}/${p.protocol}`).sort();
        const want = [80, 81].flatMap((port) => (['TCP', 'UDP', 'SCTP'] as const).map((pr) => `${portName(port, pr)}=${port}/${pr}`)).sort();
        assert.deepEqual(ports, want);
        assert.equal(pod.status.podIP, cluster.podIp(key, 4));
        assert.deepEqual(pod.status.podIPs.map((x) => x.ip), cluster.dualStack ? [cluster.podIp(key, 4), cluster.podIp(key, 6)] : [cluster.podIp(key, 4)]);
        assert.match(cluster.podIp(key, 4), /^10\.244\.\d+\.\d+$/);
        if (cluster.dualStack) assert.match(cluster.podIp(key, 6), /^fd00:10:244::\d+:\d+$/);
        assert.equal(pod.spec.nodeName, cluster.nodeOf(key));
      }
      const v4 = cluster.podKeys.map((k) => cluster.podIp(k, 4));
      assert.equal(new Set(v4).size, 9, 'IPv4 addresses unique');
      if (cluster.dualStack) assert.equal(new Set(cluster.podKeys.map((k) => cluster.podIp(k, 6))).size, 9);
      else assert.throws(() => cluster.podIp('x/a', 6));
    });

    it(`${label}: pods spread over node-1 and node-2 with same-node and cross-node pairs`, () => {
      assert.deepEqual(new Set(cluster.pods.map((p) => p.spec.nodeName)), new Set(['node-1', 'node-2']));
      assert.equal(cluster.nodeOf('x/a'), cluster.nodeOf('x/c'));
      assert.notEqual(cluster.nodeOf('x/a'), cluster.nodeOf('x/b'));
    });
  }

  it('label helpers return merged deep copies and leave the base untouched', () => {
    const c = clusters[0] as BaseCluster;
    const ns = c.namespaceWithLabels('y', { ns2: 'updated' });
    assert.deepEqual(ns.metadata.labels, { ns: 'y', 'kubernetes.io/metadata.name': 'y', ns2: 'updated' });
    const pod = c.podWithLabels('x/b', { pod2: 'updated' });
    assert.deepEqual(pod.metadata.labels, { pod: 'b', pod2: 'updated' });
    assert.deepEqual(c.namespace('y').metadata.labels, { ns: 'y', 'kubernetes.io/metadata.name': 'y' });
    assert.deepEqual(c.pod('x/b').metadata.labels, { pod: 'b' });
  });
});

describe('reachability (upstream semantics)', () => {
  it('ExpectPeer wildcards, ExpectAllIngress/Egress and Expect overwrite in call order', () => {
    const r = new Reachability(POD_KEYS, true)
      .expectPeer({}, { namespace: 'x' }, false)
      .expectPeer({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true);
    assert.equal(r.get('z/c', 'x/b'), false);
    assert.equal(r.get('y/b', 'x/a'), true);
    assert.equal(r.get('x/a', 'y/a'), true);
    assert.equal(r.get('x/a', 'x/a'), false, 'the diagonal is set by wildcards like upstream');
    r.expectAllIngress('y/c', false).expectAllEgress('z/a', false).expect('z/a', 'y/c', true);
    assert.equal(r.get('x/a', 'y/c'), false);
    assert.equal(r.get('z/a', 'x/a'), false);
    assert.equal(r.get('z/a', 'y/c'), true);
    r.allowLoopback();
    assert.equal(r.get('x/a', 'x/a'), true);
    assert.throws(() => r.expect('q/a', 'x/a', true));
    assert.equal(r.table().size, 81);
  });

  it('compares with loopback ignored and prints upstream-style tables', () => {
    const expected = new Reachability(POD_KEYS, true).expectAllIngress('x/a', false).table();
    const observed = new Reachability(POD_KEYS, true).expectAllIngress('x/a', false).table();
    observed.set(pairKey('x/a', 'x/a'), true); // loopback differs: ignored
    observed.set(pairKey('y/a', 'x/a'), true); // real mismatch
    const cmp = compareTruthTables(expected, observed, loopbackPairs(POD_KEYS));
    assert.deepEqual(cmp.wrong, ['y/a->x/a']);
    assert.equal(cmp.ignored.length, 9);
    assert.equal(cmp.correct, 71);
    const text = prettyPrintTruthTable(expected, { podKeys: POD_KEYS });
    const lines = text.split('\n');
    assert.equal(lines.length, 10);
    assert.match(lines[0] as string, /^-\s+x\/a\s+x\/b/);
    assert.match(lines[1] as string, /^x\/a\s+X\s+\.\s+\./);
    const report = formatReachabilityReport(expected, observed, loopbackPairs(POD_KEYS), POD_KEYS);
    assert.match(report, /incorrect:1/);
    assert.match(report, /y\/a->x\/a \(expected blocked\)/);
    assert.match(report, /~/);
  });
});

describe('upstream conformance cases', () => {
  it('ports all 48 traffic tests (42 TCP-context, 3 UDP, 3 SCTP) and lists the 2 API tests as skipped', () => {
    assert.equal(upstreamCases.filter((c) => c.context === CONTEXT_TCP).length, 42);
    assert.equal(upstreamCases.filter((c) => c.context === CONTEXT_UDP).length, 3);
    assert.equal(upstreamCases.filter((c) => c.context === CONTEXT_SCTP).length, 3);
    assert.equal(upstreamCases.length, 48);
    assert.deepEqual(skippedUpstreamCases.map((s) => s.name), [
      'should support creating NetworkPolicy API operations',
      'should support creating NetworkPolicy API with endport field',
    ]);
    for (const s of skippedUpstreamCases) assert.ok(s.reason.length > 0);
  });

  it('case names are unique within their context', () => {
    const full = upstreamCases.map(caseFullName);
    assert.equal(new Set(full).size, full.length);
    for (const c of upstreamCases) {
      assert.match(c.name, /^should /, c.name);
      assert.ok(c.ipFamilies.length > 0 && c.ipFamilies.every((f) => f === 4 || f === 6));
    }
  });

  for (const cluster of clusters) {
    const label = cluster.dualStack ? 'dual-stack' : 'IPv4';
    for (const c of upstreamCases) {
      it(`${label}: ${caseFullName(c)}`, () => {
        const steps: Step[] = c.build(cluster);
        assert.ok(steps.length > 0, 'at least one step');
        // Objects alive after each step, keyed by kind/namespace/name.
        const policies = new Map<string, NetworkPolicyObject>();
        steps.forEach((step, si) => {
          const where = `step ${si + 1}`;
          assert.ok(step.description.length > 0, `${where}: description`);
          assert.ok(step.probes.length > 0, `${where}: upstream validates after every change`);
          const names = new Set<string>();
          for (const o of step.apply ?? []) {
            validObject(o, `${where} ${o.kind}`);
            const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
            assert.ok(!names.has(id), `${where}: ${id} applied twice in one step`);
            names.add(id);
            if (o.kind === 'NetworkPolicy') policies.set(id, o);
          }
          for (const d of step.delete ?? []) {
            const id = `${d.kind}/${d.namespace ?? ''}/${d.name}`;
            if (d.kind === 'NetworkPolicy') assert.ok(policies.delete(id), `${where}: deletes ${id}, which exists`);
          }
          for (const p of step.probes) {
            assert.ok(p.port === 80 || p.port === 81, `${where}: port ${p.port}`);
            assert.ok(['TCP', 'UDP', 'SCTP'].includes(p.protocol));
            assert.deepEqual([...p.expected.keys()].sort(), [...ALL_PAIRS].sort(), `${where}: all 81 pairs`);
            assert.equal(p.expected.size, 81);
            for (const v of p.expected.values()) assert.equal(typeof v, 'boolean');
            assert.deepEqual([...p.ignored].sort(), POD_KEYS.map((k) => pairKey(k, k)).sort(), `${where}: loopback ignored`);
          }
        });
        const allSteps = steps.flatMap((s) => s.apply ?? []);
        assert.ok(allSteps.some((o) => o.kind === 'NetworkPolicy'), 'every case creates a policy');
      });
    }
  }

  // Spot checks against the upstream truth tables.
  const c4 = clusters[0] as BaseCluster;

  it("default-deny-ingress blocks everything into x and nothing else", () => {
    const [step] = findCase(CONTEXT_TCP, "should support a 'default-deny-ingress' policy").build(c4);
    const probe = step?.probes[0] as ProbeSpec;
    assert.equal(probe.port, 80);
    assert.equal(probe.protocol, 'TCP');
    const want = POD_KEYS.flatMap((f) => ['x/a', 'x/b', 'x/c'].filter((t) => t !== f).map((t) => pairKey(f, t))).sort();
    assert.deepEqual(blocked(probe), want);
    assert.equal(probe.expected.get('x/a->x/a'), false, 'upstream diagonal kept (ignored at comparison)');
  });

  it('egress denial on the client side: only x/a -> y/a of x/a egress works; y/a, y/b closed to others', () => {
    const [step] = findCase(
      CONTEXT_TCP,
      'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    ).build(c4);
    const p = step?.probes[0] as ProbeSpec;
    assert.equal(p.expected.get('x/a->y/a'), true);
    assert.equal(p.expected.get('x/a->y/b'), false);
    assert.equal(p.expected.get('x/a->z/c'), false);
    assert.equal(p.expected.get('x/b->y/a'), false);
    assert.equal(p.expected.get('z/c->y/b'), false);
    assert.equal(p.expected.get('z/c->y/c'), true);
    assert.equal(step?.apply?.length, 3);
  });

  it('multi-step cases: updated namespace, deleted policy, CIDR update', () => {
    const ns = findCase(CONTEXT_TCP, 'should allow ingress access from updated namespace').build(c4);
    assert.equal(ns.length, 2);
    const relabel = ns[1]?.apply?.[0];
    assert.equal(relabel?.kind, 'Namespace');
    assert.equal(relabel?.metadata.labels?.['ns2'], 'updated');
    assert.equal(ns[1]?.probes[0]?.expected.get('y/b->x/a'), true);
    assert.equal(ns[1]?.probes[0]?.expected.get('z/b->x/a'), false);

    const del = findCase(CONTEXT_TCP, 'should stop enforcing policies after they are deleted').build(c4);
    assert.deepEqual(del[1]?.delete, [{ kind: 'NetworkPolicy', namespace: 'x', name: 'deny-all' }]);
    assert.deepEqual(blocked(del[1]?.probes[0] as ProbeSpec), []);

    const cidr = findCase(CONTEXT_TCP, 'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed');
    assert.deepEqual(cidr.ipFamilies, [4]);
    const steps = cidr.build(c4);
    const first = steps[0]?.apply?.[0] as NetworkPolicyObject;
    assert.deepEqual(first.spec.egress?.[0]?.to?.[0]?.ipBlock, { cidr: '0.0.0.0/4', except: [`${c4.podIp('x/b', 4)}/32`] });
    const second = steps[1]?.apply?.[0] as NetworkPolicyObject;
    assert.equal(second.metadata.name, first.metadata.name, 'upstream updates the same policy');
    assert.deepEqual(second.spec.egress?.[0]?.to?.[0]?.ipBlock, { cidr: `${c4.podIp('x/b', 4)}/32` });
  });

  it('SCTP context probes SCTP; the SCTP-policy TCP-context cases probe TCP', () => {
    for (const c of upstreamCases.filter((x) => x.context === CONTEXT_SCTP)) {
      for (const s of c.build(c4)) for (const p of s.probes) assert.equal(p.protocol, 'SCTP');
    }
    const sctpAsTcp = findCase(
      CONTEXT_TCP,
      "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    ).build(c4);
    assert.equal(sctpAsTcp[0]?.probes[0]?.protocol, 'TCP');
    assert.equal(sctpAsTcp[0]?.probes[0]?.port, 81);
  });
});
