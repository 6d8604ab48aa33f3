// explain: the same verdict as probe on every step and probe of every conformance case (both address
// families), the rule that allows, and for a denial the closest rules with what they would need.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compiledTables, explainConnection, formatExplanation } from '../../src/observe/explain';
import { computeProbe } from '../../src/probe';
import { decodeObjects } from '../../src/source';
import { baseCluster } from '../conformance/cluster';
import { replay } from '../conformance/scenario';
import { upstreamCases } from '../conformance/upstream-cases';
import { extraCases } from '../conformance/extra-cases';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

test('explain agrees with probe on every conformance case, step and probe (IPv4 and IPv6), from the compiled tables and from the policies as written', () => {
  let compared = 0;
  for (const family of [4, 6] as const) {
    const cluster = baseCluster({ dualStack: family === 6 });
    for (const c of [...upstreamCases, ...extraCases].filter((k) => k.ipFamilies.includes(family))) {
      for (const state of replay(c, cluster)) {
        const objects = decodeObjects(state.objects, c.name);
        const tables = compiledTables(objects);
        for (const probe of state.step.probes) {
          for (const r of computeProbe(objects, { port: probe.port, protocol: probe.protocol, family })) {
            const query = { from: r.from, to: r.to, port: r.port, protocol: r.protocol, family };
            const e = explainConnection(objects, query, tables);
            const where = `${c.name} step ${state.index + 1} IPv${family}: ${r.from} -> ${r.to} ${r.protocol}/${r.port}: probe says ${r.reason}`;
            assert.equal(e.allowed, r.allowed, `${where}\n${formatExplanation(e)}`);
            const read = explainConnection(objects, query);
            assert.equal(read.allowed, r.allowed, `policies as written: ${where}\n${formatExplanation(read)}`);
            for (const d of ['egress', 'ingress'] as const) assert.equal(read[d]?.rule, e[d]?.rule, `${where}: the same allowing rule (${d})`);
            if (!e.allowed) {
              const side = [e.egress, e.ingress].find((s) => s !== null && !s.allowed);
              assert.ok(side !== undefined && side !== null && side.isolatedBy.length > 0, 'a denial names the isolating policies');
            }
            compared++;
          }
        }
      }
    }
  }
  assert.ok(compared > 5_000, `compared ${compared} connections`);
});

test('a denial names the closest rule and what it needs: a pod label, a namespace label, a port', () => {
  const objects = decodeObjects(
    [
      makeNamespace('shop', { team: 'a' }),
      makeNamespace('ops', {}),
      makePod('shop', 'server', { node: 'node-1', labels: { app: 'server' }, ips: ['10.0.1.1'], ports: [{ name: 'http', containerPort: 80 }] }),
      makePod('shop', 'client', { node: 'node-2', labels: {}, ips: ['10.0.2.1'] }),
      makePod('ops', 'monitor', { node: 'node-2', labels: { role: 'monitor' }, ips: ['10.0.2.2'] }),
      makePolicy('shop', 'server-in', {
        podSelector: { matchLabels: { app: 'server' } },
        ingress: [
          { from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] },
          { from: [{ namespaceSelector: { matchLabels: { team: 'ops' } }, podSelector: { matchLabels: { role: 'monitor' } } }], ports: [{ port: 9090 }] },
        ],
      }),
    ],
    'test',
  );
  const denied = explainConnection(objects, { from: 'shop/client', to: 'shop/server', port: 80, protocol: 'TCP' });
  assert.equal(denied.allowed, false);
  assert.equal(denied.egress?.allowed, true);
  assert.deepEqual(denied.ingress?.isolatedBy, ['shop/server-in']);
  assert.deepEqual(denied.ingress?.closest[0], { rule: 'shop/server-in/ingress/0', needs: ['label access=true on pod shop/client'] });

  const monitor = explainConnection(objects, { from: 'ops/monitor', to: 'shop/server', port: 80, protocol: 'TCP' });
  assert.deepEqual(monitor.ingress?.closest.find((d) => d.rule === 'shop/server-in/ingress/1')?.needs, ['label team=ops on namespace ops', 'port TCP/80 in the rule (it allows TCP/9090)']);

  const outside = explainConnection(objects, { from: '192.0.2.9', to: 'shop/server', port: 80, protocol: 'TCP' });
  assert.equal(outside.egress, null, 'an outside address has no egress policy of ours');
  assert.match(outside.ingress?.closest[0]?.needs[0] ?? '', /a pod as the peer \(192\.0\.2\.9 is not one\)/);

  const allowed = explainConnection(
    decodeObjects([...objects.namespaces.map((n) => makeNamespace(n.name, n.labels)), makePod('shop', 'server', { node: 'node-1', labels: { app: 'server' }, ips: ['10.0.1.1'], ports: [{ name: 'http', containerPort: 80 }] }), makePod('shop', 'client', { node: 'node-2', labels: { access: 'true' }, ips: ['10.0.2.1'] }), makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] })], 'test'),
    { from: 'shop/client', to: '10.0.1.1', port: 80, protocol: 'TCP' },
  );
  assert.equal(allowed.allowed, true);
  assert.equal(allowed.ingress?.rule, 'shop/server-in/ingress/0');
  assert.match(formatExplanation(denied), /DENIED\n.*egress of shop\/client: not isolated[^]*closest: shop\/server-in\/ingress\/0 needs label access=true on pod shop\/client/);
});
