// Turns two snapshots of the cluster into the events between them, the way a watch would have
// delivered them: what a file source emits when its files change, and what tests replay.
import { objectKey } from '../api';
import type { ClusterEvent, NamespaceState, PodState, PolicyState } from '../api';
import type { ClusterObjects } from './manifests';


function byKey<T>(items: readonly T[], k: (t: T) => string): Map<string, T> {
  return new Map(items.map((t) => [k(t), t]));
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Upserts in dependency order (namespaces, pods, policies), then deletes in reverse. */
export function eventsBetween(prev: ClusterObjects | null, next: ClusterObjects): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  const before = {
    namespaces: byKey<NamespaceState>(prev?.namespaces ?? [], (n) => n.name),
    pods: byKey<PodState>(prev?.pods ?? [], objectKey),
    policies: byKey<PolicyState>(prev?.policies ?? [], objectKey),
  };
  const after = {
    namespaces: byKey(next.namespaces, (n) => n.name),
    pods: byKey(next.pods, objectKey),
    policies: byKey(next.policies, objectKey),
  };
  for (const [k, object] of after.namespaces) if (!same(before.namespaces.get(k), object)) events.push({ type: 'upsert', kind: 'Namespace', object });
  for (const [k, object] of after.pods) if (!same(before.pods.get(k), object)) events.push({ type: 'upsert', kind: 'Pod', object });
  for (const [k, object] of after.policies) if (!same(before.policies.get(k), object)) events.push({ type: 'upsert', kind: 'NetworkPolicy', object });
  for (const [k, p] of before.policies) if (!after.policies.has(k)) events.push({ type: 'delete', kind: 'NetworkPolicy', ref: { namespace: p.namespace, name: p.name } });
  for (const [k, p] of before.pods) if (!after.pods.has(k)) events.push({ type: 'delete', kind: 'Pod', ref: { namespace: p.namespace, name: p.name } });
  for (const [k] of before.namespaces) if (!after.namespaces.has(k)) events.push({ type: 'delete', kind: 'Namespace', name: k });
  return events;
}
