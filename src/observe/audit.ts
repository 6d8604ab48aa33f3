// Audit mode. A policy annotated netpol-agent.io/enforcement: audit (or every policy, with
// `run --audit`) is left out of what the agent enforces, and evaluated in a second table of its own
// (DEFAULT_TABLE + "_audit") whose group chains log and count what they would drop and drop nothing.
// The log records of that table are reported as "would drop" only when the enforced rules let the
// connection through: what the enforced rules drop is already reported as a drop.
// The audit loop (a second compiler and dataplane) starts with the first audited policy, from the
// cluster index, so an agent without audited policies pays nothing for it.
import type { ClusterEvent, ObjectKind, ObjectRef, PolicyState, SourceSink } from '../api';
import { objectKey } from '../api';
import { eventsBetween } from '../source';
import type { ClusterIndex } from './cluster-index';

export function isAudited(policy: PolicyState, auditAll: boolean): boolean {
  return auditAll || policy.enforcement === 'audit';
}

/** Feeds the audit loop every event, once it is started by the first audited policy. */
export class AuditRunner implements SourceSink {
  private sink: SourceSink | null = null;
  private isSynced = false;
  private readonly audited = new Set<string>();

  constructor(
    private readonly index: ClusterIndex,
    private readonly auditAll: boolean,
    private readonly start: () => SourceSink,
  ) {}

  /** Policies in audit ("namespace/name"), sorted. */
  policies(): string[] {
    return [...this.audited].sort();
  }

  get started(): boolean {
    return this.sink !== null;
  }

  events(batch: readonly ClusterEvent[]): void {
    for (const e of batch) {
      if (e.kind !== 'NetworkPolicy') continue;
      if (e.type === 'upsert' && isAudited(e.object, this.auditAll)) this.audited.add(objectKey(e.object));
      else this.audited.delete(e.type === 'upsert' ? objectKey(e.object) : objectKey(e.ref));
    }
    if (this.sink !== null) return this.sink.events(batch);
    if (this.audited.size === 0) return;
    // The index already holds this batch: its listing is the whole cluster up to now.
    this.sink = this.start();
    this.sink.events(eventsBetween(null, this.index.objects()));
    if (this.isSynced) this.sink.synced();
  }

  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void {
    if (this.auditAll && kind === 'NetworkPolicy') this.audited.add(objectKey(ref));
    this.sink?.rejected(kind, ref, reason, raw);
  }

  synced(): void {
    this.isSynced = true;
    this.sink?.synced();
  }

  /** The enforcing loop logs the source's problems and records its health: the audit loop needs neither. */
  problem(): void {}

  health(): void {}
}
