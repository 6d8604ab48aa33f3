// The one path of what a cluster source delivers through the agent:
//
//   source ─> cluster index (tee) ─> enforced/audit split ─┬─> enforcedOnly ─> [CNI gate] ─> enforcing loop
//                                                            └─> audit runner ─> audit loop (from the first audited policy)
//
// Every stage is a SourceSink and every SourceSink method is required, so the compiler refuses a stage
// that drops one; the stages that change only some calls are built with forwardingSink, which hands
// every other call on unchanged. Health levels travel the same path and end in the enforcing loop,
// which records them in the agent's health registry.
import type { ClusterEvent, SourceSink } from '../api';
import type { AuditRunner } from '../observe/audit';
import { isAudited } from '../observe/audit';
import type { ClusterIndex } from '../observe/cluster-index';

/**
 * A sink that hands every call to `next`, except those `overrides` replaces. Listing each method here
 * (rather than spreading `next`) keeps class instances working and makes a new SourceSink method a
 * compile error until it is forwarded.
 */
export function forwardingSink(next: SourceSink, overrides: Partial<SourceSink> = {}): SourceSink {
  const forwarded: SourceSink = {
    events: (batch) => next.events(batch),
    rejected: (kind, ref, reason, raw) => next.rejected(kind, ref, reason, raw),
    synced: () => next.synced(),
    problem: (message, cause) => next.problem(message, cause),
    health: (part, failure) => next.health(part, failure),
  };
  return { ...forwarded, ...overrides };
}

/** Shows each event to `index`, then hands everything on to `next`. */
export function teeSink(index: ClusterIndex, next: SourceSink): SourceSink {
  return forwardingSink(next, {
    events(batch) {
      for (const e of batch) index.apply(e);
      next.events(batch);
    },
  });
}

/** The enforcing loop's view: audited policies read as deleted. */
export function enforcedOnly(next: SourceSink, auditAll: boolean): SourceSink {
  const filter = (e: ClusterEvent): ClusterEvent =>
    e.kind === 'NetworkPolicy' && e.type === 'upsert' && isAudited(e.object, auditAll) ? { type: 'delete', kind: 'NetworkPolicy', ref: { namespace: e.object.namespace, name: e.object.name } } : e;
  return forwardingSink(next, {
    events: (batch) => next.events(batch.map(filter)),
    // An invalid policy is enforced fail-closed, except when the whole agent only audits.
    rejected: (kind, ref, reason, raw) => {
      if (!(auditAll && kind === 'NetworkPolicy')) next.rejected(kind, ref, reason, raw);
    },
  });
}

/** Hands every call to each sink in turn. */
export function fanOut(...sinks: SourceSink[]): SourceSink {
  return {
    events: (batch) => sinks.forEach((s) => s.events(batch)),
    rejected: (kind, ref, reason, raw) => sinks.forEach((s) => s.rejected(kind, ref, reason, raw)),
    synced: () => sinks.forEach((s) => s.synced()),
    problem: (message, cause) => sinks.forEach((s) => s.problem(message, cause)),
    health: (part, failure) => sinks.forEach((s) => s.health(part, failure)),
  };
}

export interface PipelineStages {
  readonly index: ClusterIndex;
  readonly auditAll: boolean;
  readonly audit: AuditRunner;
  /** The enforcing side's end: the CNI gate when the socket is on (it forwards to the loop), else the loop. */
  readonly enforcing: SourceSink;
}

/** The sink a source starts with. */
export function eventPipeline(stages: PipelineStages): SourceSink {
  return teeSink(stages.index, fanOut(enforcedOnly(stages.enforcing, stages.auditAll), stages.audit));
}
