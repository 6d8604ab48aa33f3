// Audit mode without the kernel: the annotation as parsed, the enforcing loop's view of audited
// policies, and the audit loop started by the first audited policy with the cluster so far.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent, SourceSink } from '../../src/api';
import { parseNetworkPolicy } from '../../src/parse';
import { enforcedOnly } from '../../src/agent/pipeline';
import { AuditRunner } from '../../src/observe/audit';
import { ClusterIndex } from '../../src/observe/cluster-index';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

function annotated(value: string | undefined): Record<string, unknown> {
  const p = makePolicy('shop', 'p', { podSelector: {}, ingress: [] }) as { metadata: Record<string, unknown> };
  if (value !== undefined) p.metadata['annotations'] = { 'netpol-agent.io/enforcement': value, other: 'x' };
  return p as unknown as Record<string, unknown>;
}

function recorder(): SourceSink & { events_: ClusterEvent[]; synced_: number } {
  const r = {
    events_: [] as ClusterEvent[],
    synced_: 0,
    events: (b: readonly ClusterEvent[]) => void r.events_.push(...b),
    rejected: () => undefined,
    synced: () => void r.synced_++,
    problem: () => undefined,
    health: () => undefined,
  };
  return r;
}

test('the enforcement annotation: audit, enforce or absent; anything else is an error naming the field', () => {
  assert.equal(parseNetworkPolicy(annotated('audit')).enforcement, 'audit');
  assert.equal(parseNetworkPolicy(annotated('enforce')).enforcement, undefined);
  assert.equal(parseNetworkPolicy(annotated(undefined)).enforcement, undefined);
  assert.throws(() => parseNetworkPolicy(annotated('Audit')), /NetworkPolicy shop\/p: metadata\.annotations\[netpol-agent\.io\/enforcement\].*"audit"/);
});

test('the enforcing loop sees an audited policy as deleted; with --audit every policy', () => {
  const audited = parseNetworkPolicy(annotated('audit'));
  const enforced = parseNetworkPolicy(annotated(undefined));
  const sink = recorder();
  enforcedOnly(sink, false).events([{ type: 'upsert', kind: 'NetworkPolicy', object: audited }, { type: 'upsert', kind: 'NetworkPolicy', object: enforced }]);
  assert.deepEqual(sink.events_.map((e) => `${e.type} ${e.kind}`), ['delete NetworkPolicy', 'upsert NetworkPolicy']);
  const all = recorder();
  enforcedOnly(all, true).events([{ type: 'upsert', kind: 'NetworkPolicy', object: enforced }]);
  assert.deepEqual(all.events_.map((e) => e.type), ['delete']);
});

test('the audit loop starts with the first audited policy, from everything heard so far, and is told the source synced', () => {
  const index = new ClusterIndex();
  const started: ReturnType<typeof recorder>[] = [];
  const runner = new AuditRunner(index, false, () => {
    const r = recorder();
    started.push(r);
    return r;
  });
  const feed = (events: ClusterEvent[]): void => {
    for (const e of events) index.apply(e);
    runner.events(events);
  };
  feed(eventsBetween(null, decodeObjects([makeNamespace('shop'), makePod('shop', 'a', { ips: ['10.0.0.1'] }), makePolicy('shop', 'enforced', { podSelector: {} })], 't')));
  runner.synced();
  assert.equal(started.length, 0, 'no audited policy: no audit loop');
  feed([{ type: 'upsert', kind: 'NetworkPolicy', object: parseNetworkPolicy(annotated('audit')) }]);
  assert.equal(started.length, 1);
  const first = started[0];
  assert.ok(first);
  assert.deepEqual(first.events_.map((e) => `${e.kind} ${e.type === 'upsert' ? ('name' in e.object ? e.object.name : '') : ''}`).sort(), ['Namespace shop', 'NetworkPolicy enforced', 'NetworkPolicy p', 'Pod a']);
  assert.equal(first.synced_, 1);
  assert.deepEqual(runner.policies(), ['shop/p']);
  feed([{ type: 'delete', kind: 'NetworkPolicy', ref: { namespace: 'shop', name: 'p' } }]);
  assert.deepEqual(runner.policies(), []);
  assert.equal(first.events_.at(-1)?.type, 'delete', 'later events go to the running audit loop');
});
