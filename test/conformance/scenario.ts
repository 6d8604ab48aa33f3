// Replays a conformance case step by step as cumulative cluster states, the way every tier (probe,
// probe --dataplane, e2e) consumes them.
import type { BaseCluster, KubeObject } from './cluster';
import type { ConformanceCase, Step } from './upstream-cases';

export interface StepState {
  readonly step: Step;
  readonly index: number;
  /** The whole cluster after this step: namespaces, pods and policies. */
  readonly objects: KubeObject[];
}

function objectKey(o: { kind: string; metadata: { namespace?: string; name: string } }): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

export function replay(c: ConformanceCase, cluster: BaseCluster): StepState[] {
  const objects = new Map<string, KubeObject>();
  for (const o of [...cluster.namespaces, ...cluster.pods]) objects.set(objectKey(o), o);
  return c.build(cluster).map((step, index) => {
    for (const o of step.apply ?? []) objects.set(objectKey(o), o);
    for (const d of step.delete ?? []) objects.delete(objectKey({ kind: d.kind, metadata: { name: d.name, ...(d.namespace !== undefined ? { namespace: d.namespace } : {}) } }));
    return { step, index, objects: [...objects.values()] };
  });
}

/** A `kind: List` document holding the objects, as `probe -f` reads it. */
export function asListManifest(objects: readonly KubeObject[]): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1);
}
