// The drop log without the kernel: a record explained from the rule state, identical drops in a window
// as one line, the bound on distinct pending drops, /drops' order and filter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { DropLog, explainDrop } from '../../src/observe/drops';
import type { DropContext, DropEvent } from '../../src/observe/drops';
import { ClusterIndex } from '../../src/observe/cluster-index';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePod } from '../support/builders';

const context: DropContext = {
  group: (chain) => (chain === 'in_1' ? { direction: 'ingress' } : null),
  localPodOf: (ip) => (ip === '10.0.1.1' ? 'shop/server' : null),
  podOf: (ip) => ({ '10.0.1.1': 'shop/server', '10.0.2.1': 'shop/client' })[ip] ?? null,
  decide: () => ({ allowed: false, isolatedBy: ['shop/server-in'] }),
  boundRules: () => ['shop/server-in/ingress/0'],
};

function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino(stream), lines };
}

const flushed = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a record is explained: pods, port, direction, isolating policy and the rules that do not allow it', () => {
  const e = explainDrop({ prefix: 'in_1', family: 4, protocol: 6, saddr: '10.0.2.1', daddr: '10.0.1.1', dport: 80 }, context);
  assert.ok(e);
  assert.deepEqual([e.src, e.dst, e.protocol, e.port, e.direction, e.pod], [{ ip: '10.0.2.1', pod: 'shop/client' }, { ip: '10.0.1.1', pod: 'shop/server' }, 'TCP', 80, 'ingress', 'shop/server']);
  assert.equal(e.reason, 'ingress of shop/server is isolated by shop/server-in and none of their rules (shop/server-in/ingress/0) allows shop/client (10.0.2.1) on TCP/80');
  const outside = explainDrop({ prefix: 'in_1', family: 4, protocol: 17, saddr: '192.0.2.1', daddr: '10.0.1.1', dport: 53 }, context);
  assert.deepEqual(outside?.src, { ip: '192.0.2.1' }, 'an address that is no pod stays an address');
});

test('identical drops within the window are one line with count, first and last seen; a later one starts a new window', async () => {
  let now = 1_000_000;
  const { logger, lines } = capture();
  const log = new DropLog({ logger, registry: new Registry(), windowMs: 5_000, now: () => now });
  try {
    const e = explainDrop({ prefix: 'in_1', family: 4, protocol: 6, saddr: '10.0.2.1', daddr: '10.0.1.1', dport: 80 }, context) as DropEvent;
    log.record(e);
    now += 1_000;
    log.record(e);
    log.record({ ...e, port: 81 });
    log.flush(false);
    await flushed();
    assert.equal(lines.length, 0, 'nothing before the window ends');
    assert.deepEqual(log.recent({ pod: 'shop/client' }).map((d) => [d.port, d.count]), [[80, 2], [81, 1]], 'same last seen: in arrival order');
    now += 5_000;
    log.flush(false);
    await flushed();
    assert.equal(lines.length, 2);
    const first = lines.find((l) => (l['drop'] as DropEvent).port === 80)?.['drop'] as { count: number; firstSeen: string; lastSeen: string };
    assert.deepEqual([first.count, first.firstSeen, first.lastSeen], [2, new Date(1_000_000).toISOString(), new Date(1_001_000).toISOString()]);
    log.record(e);
    assert.equal(log.recent().length, 3, 'a new window is a new entry');
    assert.deepEqual(log.recent({ pod: 'shop/nobody' }), []);
  } finally {
    log.close();
  }
});

test('distinct pending drops are bounded: beyond the bound the oldest is logged at once', async () => {
  const { logger, lines } = capture();
  const log = new DropLog({ logger, registry: new Registry(), windowMs: 60_000, maxPending: 100, maxRecent: 50 });
  try {
    const e = explainDrop({ prefix: 'in_1', family: 4, protocol: 6, saddr: '10.0.2.1', daddr: '10.0.1.1', dport: 80 }, context) as DropEvent;
    for (let port = 1; port <= 1_000; port++) log.record({ ...e, port });
    await flushed();
    assert.equal(lines.length, 900, 'the 900 oldest were logged early');
    assert.equal(log.recent().length, 50, '/drops keeps the last 50');
  } finally {
    log.close();
  }
});

test('the cluster index names the pod of an address: a reused address is the running pod\'s, a host-network pod\'s is nobody\'s', () => {
  const index = new ClusterIndex();
  const feed = (objects: object[]): void => {
    for (const e of eventsBetween(null, decodeObjects(objects, 't'))) index.apply(e);
  };
  feed([makeNamespace('a'), makePod('a', 'new', { ips: ['10.0.0.5'] }), makePod('a', 'old', { ips: ['10.0.0.5'], phase: 'Succeeded' }), makePod('a', 'host', { ips: ['192.168.0.1'], hostNetwork: true })]);
  assert.equal(index.podOf('10.0.0.5'), 'a/new');
  assert.equal(index.podOf('192.168.0.1'), null);
  index.apply({ type: 'delete', kind: 'Pod', ref: { namespace: 'a', name: 'new' } });
  assert.equal(index.podOf('10.0.0.5'), null);
});
