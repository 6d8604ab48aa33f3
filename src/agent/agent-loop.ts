// The agent loop: source events -> compiler -> rule-table deltas -> dataplane transactions.
//
//   SourceSink.events/rejected ──> queue ──(chunks, setImmediate between)──> NodeCompiler.apply
//                                                                                  │ deltas
//                                       Dataplane.sync / apply <── DeltaAccumulator┘
//
// - Nothing is programmed before the source is synced: a restarted agent leaves the table it finds
//   enforcing, and its first transaction is a full reconcile over it.
// - One transaction at a time. A lone event is committed as soon as it is compiled; events compiled
//   while a transaction is in flight are folded into the next one, so a burst costs few transactions.
// - Compiling yields to the event loop every `chunkSize` events, so the HTTP server and the watches
//   stay responsive while a large listing is compiled.
// - A failed transaction makes the next one a full reconcile (after `retryMs`, doubling up to a
//   minute); so does the periodic resync, which repairs drift.
import type { Logger } from 'pino';
import { objectKey } from '../api';
import type { ClusterEvent, Direction, ObjectKind, ObjectRef, PolicyState, RuleTableDelta, RuleTableElement, SourceSink } from '../api';
import type { NodeCompiler } from '../compiler';
import type { SyncReport } from '../dataplane';
import { errorMessage } from '../errors';
import { DeltaAccumulator } from './delta-accumulator';
import { failClosedPolicy } from './fail-closed';
import { DATAPLANE_COMPONENT, HealthRegistry, SOURCE_COMPONENT_PREFIX } from './health';
import type { AgentMetrics, EventClass } from './metrics';

/** What the loop needs of the dataplane (Dataplane implements it). */
export interface LoopDataplane {
  readonly table: string;
  sync(elements: Iterable<RuleTableElement>): Promise<SyncReport>;
  apply(delta: RuleTableDelta): Promise<SyncReport>;
  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null;
  /** A local pod's elements and the peers of its rules, without reading the whole table (/rules?pod=). */
  podElements(pod: string): Iterable<RuleTableElement>;
}

export interface AgentLoopOptions {
  readonly compiler: NodeCompiler;
  readonly dataplane: LoopDataplane;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** Period of the full reconcile that repairs drift; 0 disables it. */
  readonly resyncPeriodMs?: number;
  /** Events compiled between two yields to the event loop (default 200). */
  readonly chunkSize?: number;
  /** While events keep arriving, the longest a compiled change waits for its transaction (default 50 ms). */
  readonly maxBatchMs?: number;
  /** First delay before a full reconcile after a failed transaction (default 1,000 ms). */
  readonly retryMs?: number;
  /**
   * How long a part of the source may fail before readiness says so (default 10 s): a reset connection
   * or a restarted API server is retried within seconds, and readiness should not flap for those.
   */
  readonly sourceFailureGraceMs?: number;
  /** Where the loop reports the dataplane's level and the source's (default: a registry of its own). */
  readonly health?: HealthRegistry;
  /** Called after each committed transaction (benchmarks and tests observe the loop through it). */
  readonly onCommitted?: (commit: CommitInfo) => void;
}

export interface CommitInfo {
  readonly report: SyncReport;
  /** performance.now() when the kernel confirmed the transaction. */
  readonly committedAt: number;
  /** The events it carries: their class and when each was received. */
  readonly events: readonly { readonly cls: EventClass; readonly receivedAt: number }[];
}

/** A NetworkPolicy enforced fail-closed instead of as written. */
export interface NotEnforceable {
  readonly policy: string;
  readonly reason: string;
  readonly enforcedAs: PolicyState;
  readonly selectorUsable: boolean;
}

/** A Pod or Namespace whose last update was invalid: its last good version stays. */
export interface RejectedObject {
  readonly kind: ObjectKind;
  readonly object: string;
  readonly reason: string;
}

export interface SyncStatus {
  readonly synced: boolean;
  readonly ready: boolean;
  readonly lastFullSync: string | null;
  readonly lastChange: string | null;
  /** Transactions committed since start. */
  readonly generation: number;
  readonly pendingEvents: number;
  readonly lastError: { readonly message: string; readonly at: string } | null;
  /** The part of the source failing the longest (API server unreachable, RBAC, a broken datastore), since `since`; null when every part reads. */
  readonly sourceProblem: { readonly message: string; readonly since: string } | null;
}

interface Received {
  readonly event: ClusterEvent;
  readonly cls: EventClass;
  readonly receivedAt: number;
}

const MAX_RETRY_MS = 60_000;

function eventRef(e: ClusterEvent): ObjectRef {
  if (e.kind === 'Namespace') return { namespace: '', name: e.type === 'upsert' ? e.object.name : e.name };
  return e.type === 'upsert' ? e.object : e.ref;
}

function kindKey(kind: ObjectKind, ref: ObjectRef): string {
  return `${kind}|${objectKey(ref)}`;
}

export class AgentLoop implements SourceSink {
  private readonly compiler: NodeCompiler;
  private readonly dataplane: LoopDataplane;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;
  private readonly chunkSize: number;
  private readonly maxBatchMs: number;
  private readonly retryMs: number;

  private queue: Received[] = [];
  private head = 0;
  private readonly accumulator = new DeltaAccumulator();
  /** Compiled events waiting for their transaction. */
  private carried: { cls: EventClass; receivedAt: number }[] = [];
  private isSynced = false;
  /** Events received and compiled since start; synced() marks how many the complete listing holds. */
  private receivedCount = 0;
  private compiledCount = 0;
  private listingSize = 0;
  private needsFull = true;
  private pumping = false;
  private pumpScheduled = false;
  private inFlight: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay: number;
  private resyncTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  private readonly namespaces = new Set<string>();
  private readonly pods = new Set<string>();
  private readonly localPods = new Set<string>();
  private readonly policyStates = new Map<string, PolicyState>();
  private readonly notEnforceable = new Map<string, NotEnforceable>();
  private readonly rejectedObjects = new Map<string, RejectedObject>();

  private generation = 0;
  private lastFullSync: Date | null = null;
  private lastChange: Date | null = null;
  private lastError: { message: string; at: Date } | null = null;
  private lastTransactionOk = false;
  private readonly registry: HealthRegistry;

  constructor(private readonly options: AgentLoopOptions) {
    this.compiler = options.compiler;
    this.dataplane = options.dataplane;
    this.metrics = options.metrics;
    this.log = options.logger;
    this.chunkSize = options.chunkSize ?? 200;
    this.maxBatchMs = options.maxBatchMs ?? 50;
    this.retryMs = options.retryMs ?? 1_000;
    this.retryDelay = this.retryMs;
    this.registry = options.health ?? new HealthRegistry();
    this.reportDataplane(false, 'waiting for the first complete listing of the cluster');
    const period = options.resyncPeriodMs ?? 0;
    if (period > 0) {
      this.resyncTimer = setInterval(() => this.requestFullSync('periodic resync'), period);
      this.resyncTimer.unref();
    }
  }

  get node(): string {
    return this.compiler.node;
  }

  // --- SourceSink -------------------------------------------------------------------------------

  events(batch: readonly ClusterEvent[]): void {
    if (this.stopped) return;
    const receivedAt = performance.now();
    for (const event of batch) {
      const ref = eventRef(event);
      // A later upsert or delete of a rejected object ends its rejection.
      this.rejectedObjects.delete(kindKey(event.kind, ref));
      if (event.kind === 'NetworkPolicy') this.notEnforceable.delete(objectKey(ref));
      this.queue.push({ event, cls: this.classify(event), receivedAt });
    }
    this.receivedCount += batch.length;
    this.schedule();
  }

  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void {
    if (this.stopped) return;
    this.metrics.error('rejected');
    const object = objectKey(ref);
    if (kind !== 'NetworkPolicy') {
      this.log.warn({ kind, object, reason }, `${kind} ${object} is invalid; its last good version stays enforced`);
      this.rejectedObjects.set(kindKey(kind, ref), { kind, object: kind === 'Namespace' ? ref.name : object, reason });
      return;
    }
    const { policy, selectorUsable } = failClosedPolicy(ref, raw);
    this.log.warn({ kind, object, reason, selectorUsable }, `NetworkPolicy ${object} is not enforceable as written; it isolates ${selectorUsable ? 'the pods it selects' : 'every pod of its namespace'} and allows nothing`);
    this.notEnforceable.set(object, { policy: object, reason, enforcedAs: policy, selectorUsable });
    this.queue.push({ event: { type: 'upsert', kind: 'NetworkPolicy', object: policy }, cls: 'NetworkPolicy', receivedAt: performance.now() });
    this.receivedCount++;
    this.schedule();
  }

  synced(): void {
    if (this.stopped || this.isSynced) return;
    this.isSynced = true;
    this.listingSize = this.receivedCount;
    this.reportDataplane(false, 'first reconcile of the kernel table in progress');
    this.log.info({ pendingEvents: this.pendingEvents() }, 'source synced: reconciling the kernel table');
    this.schedule();
  }

  problem(message: string, cause?: unknown): void {
    this.metrics.error('source');
    this.lastError = { message, at: new Date() };
    // The message names the object and what to do; the cause's stack helps only a developer.
    this.log.error(message);
    if (cause !== undefined) this.log.debug({ err: cause }, `cause: ${errorMessage(cause)}`);
  }

  health(part: string, failure: string | null): void {
    const name = `${SOURCE_COMPONENT_PREFIX}${part}`;
    const before = this.registry.level(name);
    this.registry.report(name, { graceMs: this.options.sourceFailureGraceMs ?? 10_000, readiness: true }, failure === null, failure ?? 'reads');
    if (failure === null && before?.ok === false) {
      this.log.info({ component: name, failingSinceMs: Date.now() - before.since.getTime() }, `${name} reads again`);
    }
  }

  // --- control ----------------------------------------------------------------------------------

  /** The next transaction is a full reconcile. */
  requestFullSync(why: string): void {
    if (this.stopped) return;
    this.log.debug({ why }, 'full reconcile requested');
    this.needsFull = true;
    this.schedule();
  }

  /** Stops timers and waits for the transaction in flight; the kernel table stays as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer !== null) clearInterval(this.resyncTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    await this.inFlight;
  }

  /**
   * Resolves once the loop has nothing left to do for now: everything received is committed, or it
   * waits for synced() or for a retry (tests and benchmarks).
   */
  async idle(): Promise<void> {
    for (;;) {
      if (this.inFlight !== null) await this.inFlight;
      else if (this.pumping || this.pumpScheduled) await new Promise((r) => setImmediate(r));
      else if (this.pendingEvents() === 0 || !this.isSynced || this.retryTimer !== null || this.stopped) return;
      else await new Promise((r) => setImmediate(r));
    }
  }

  // --- views ------------------------------------------------------------------------------------

  status(): SyncStatus {
    const sourceFailure = this.registry.firstFailure(SOURCE_COMPONENT_PREFIX);
    return {
      synced: this.isSynced,
      ready: this.ready(),
      lastFullSync: this.lastFullSync?.toISOString() ?? null,
      lastChange: this.lastChange?.toISOString() ?? null,
      generation: this.generation,
      pendingEvents: this.pendingEvents(),
      lastError: this.lastError === null ? null : { message: this.lastError.message, at: this.lastError.at.toISOString() },
      sourceProblem: sourceFailure === null ? null : { message: `${sourceFailure.name}: ${sourceFailure.level.reason}`, since: sourceFailure.level.since.toISOString() },
    };
  }

  /**
   * Every component the registry holds is ok or within its grace period (the kernel keeps enforcing
   * the last state either way).
   */
  ready(): boolean {
    return this.registry.ready();
  }

  /**
   * Whether the agent can program a new pod now: the source was synced once, the kernel table was
   * reconciled, and the last transaction succeeded. What the CNI plugin's STATUS asks; the source's
   * health does not enter (the last state a failing source delivered is still programmable).
   */
  canProgram(): boolean {
    return this.isSynced && this.lastFullSync !== null && this.lastTransactionOk;
  }

  policy(key: string): PolicyState | undefined {
    return this.policyStates.get(key);
  }

  notEnforceableList(): NotEnforceable[] {
    return [...this.notEnforceable.values()].sort((a, b) => (a.policy < b.policy ? -1 : 1));
  }

  rejectedList(): RejectedObject[] {
    return [...this.rejectedObjects.values()];
  }

  get table(): string {
    return this.dataplane.table;
  }

  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null {
    return this.dataplane.implementationOf(pod, direction);
  }

  elements(): IterableIterator<RuleTableElement> {
    return this.compiler.elements();
  }

  podElements(pod: string): Iterable<RuleTableElement> {
    return this.dataplane.podElements(pod);
  }

  // --- the pump ---------------------------------------------------------------------------------

  /** The source is synced and every event of its complete listing is compiled: the first full sync may run. */
  private listingCompiled(): boolean {
    return this.isSynced && this.compiledCount >= this.listingSize;
  }

  private pendingEvents(): number {
    return this.queue.length - this.head + this.carried.length;
  }

  private classify(event: ClusterEvent): EventClass {
    if (event.kind !== 'Pod') return event.kind;
    const local = event.type === 'upsert' ? event.object.nodeName === this.node : this.localPods.has(objectKey(event.ref));
    return local ? 'LocalPod' : 'Pod';
  }

  /** Deferred, so that everything a source delivers in one turn (events, then rejections) is compiled together. */
  private schedule(): void {
    if (this.pumpScheduled || this.pumping || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      let batchStarted = performance.now();
      for (;;) {
        if (this.head < this.queue.length) {
          this.compileChunk();
          const more = this.head < this.queue.length;
          if (more && (this.inFlight !== null || !this.listingCompiled() || performance.now() - batchStarted < this.maxBatchMs)) {
            await new Promise((r) => setImmediate(r));
            continue;
          }
        }
        if (!this.listingCompiled() || this.inFlight !== null || this.retryTimer !== null || this.stopped) break;
        if (!this.needsFull && this.accumulator.empty && this.carried.length === 0) {
          if (this.head < this.queue.length) continue;
          break;
        }
        this.inFlight = this.commit();
        batchStarted = performance.now();
        if (this.head >= this.queue.length) break;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.pumping = false;
      this.metrics.pendingEvents.set(this.pendingEvents());
    }
  }

  private compileChunk(): void {
    const end = Math.min(this.queue.length, this.head + this.chunkSize);
    for (; this.head < end; this.head++) {
      const item = this.queue[this.head];
      this.compiledCount++;
      if (item === undefined) continue;
      this.track(item.event);
      let delta;
      try {
        delta = this.compiler.apply(item.event);
      } catch (err) {
        // A compiler bug must not stop enforcement of everything else: the next full reconcile
        // programs whatever the compiler holds.
        const object = objectKey(eventRef(item.event));
        this.metrics.error('dataplane');
        this.log.error({ err, kind: item.event.kind, object }, `compiling ${item.event.kind} ${object} failed: ${errorMessage(err)}`);
        this.needsFull = true;
        continue;
      }
      this.carried.push({ cls: item.cls, receivedAt: item.receivedAt });
      // The next full sync reads the compiler's whole table: no delta to keep until then.
      if (!this.needsFull) this.accumulator.add(delta);
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 10_000) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.metrics.pendingEvents.set(this.pendingEvents());
  }

  private track(event: ClusterEvent): void {
    switch (event.kind) {
      case 'Namespace':
        if (event.type === 'upsert') this.namespaces.add(event.object.name);
        else this.namespaces.delete(event.name);
        this.metrics.objectCount.set({ kind: 'Namespace' }, this.namespaces.size);
        break;
      case 'Pod': {
        const key = objectKey(event.type === 'upsert' ? event.object : event.ref);
        if (event.type === 'upsert') {
          this.pods.add(key);
          if (event.object.nodeName === this.node) this.localPods.add(key);
          else this.localPods.delete(key);
        } else {
          this.pods.delete(key);
          this.localPods.delete(key);
        }
        this.metrics.objectCount.set({ kind: 'Pod' }, this.pods.size);
        break;
      }
      case 'NetworkPolicy': {
        if (event.type === 'upsert') this.policyStates.set(objectKey(event.object), event.object);
        else this.policyStates.delete(objectKey(event.ref));
        this.metrics.objectCount.set({ kind: 'NetworkPolicy' }, this.policyStates.size);
        this.metrics.notEnforceable.set(this.notEnforceable.size);
        break;
      }
    }
  }

  private async commit(): Promise<void> {
    const full = this.needsFull;
    const carried = this.carried;
    const delta = this.accumulator.take();
    this.carried = [];
    this.needsFull = false;
    const type = full ? 'full' : 'incremental';
    const started = performance.now();
    try {
      const report = full ? await this.dataplane.sync(this.compiler.elements()) : await this.dataplane.apply(delta);
      const committedAt = performance.now();
      this.recordSuccess(report, committedAt, carried, full ? this.compiler.elementCount : delta.added.length + delta.removed.length);
      this.options.onCommitted?.({ report, committedAt, events: carried });
    } catch (err) {
      this.recordFailure(type, err, performance.now() - started);
      // Their latency runs on until the reconcile that carries them.
      this.carried = carried.concat(this.carried);
    } finally {
      this.inFlight = null;
      this.schedule();
    }
  }

  private recordSuccess(report: SyncReport, committedAt: number, carried: readonly { cls: EventClass; receivedAt: number }[], elements: number): void {
    const m = this.metrics;
    m.transactions.inc({ type: report.kind, result: 'ok' });
    m.syncDuration.observe({ type: report.kind }, report.durationMs / 1000);
    m.operations.inc(report.operations);
    for (const c of carried) m.programmingLatency.observe({ kind: c.cls }, (committedAt - c.receivedAt) / 1000);
    m.pendingEvents.set(this.pendingEvents());
    const now = new Date();
    this.generation++;
    this.lastTransactionOk = true;
    this.retryDelay = this.retryMs;
    if (report.operations > 0) this.lastChange = now;
    const line = { type: report.kind, events: carried.length, elements, operations: report.operations, groups: report.groups, durationMs: Math.round(report.durationMs * 10) / 10, generation: this.generation };
    if (report.kind === 'full') {
      this.lastFullSync = now;
      this.reportDataplane(true, 'the kernel table is reconciled and the last transaction committed');
      this.log.info(line, 'full sync committed');
    } else {
      this.log.debug(line, 'update committed');
    }
  }

  /** The dataplane's level: no grace, a new pod cannot be programmed while it fails. */
  private reportDataplane(ok: boolean, reason: string): void {
    this.registry.report(DATAPLANE_COMPONENT, { graceMs: 0, readiness: true }, ok, reason);
  }

  private recordFailure(type: 'full' | 'incremental', err: unknown, durationMs: number): void {
    this.metrics.transactions.inc({ type, result: 'error' });
    this.metrics.error('dataplane');
    this.lastTransactionOk = false;
    this.needsFull = true;
    this.accumulator.clear();
    const message = `${type} transaction failed: ${errorMessage(err)}`;
    this.lastError = { message, at: new Date() };
    this.reportDataplane(false, `last transaction failed: ${errorMessage(err)}; full reconcile in ${this.retryDelay} ms`);
    this.log.error({ err, type, durationMs: Math.round(durationMs), retryInMs: this.retryDelay }, `${message}; the kernel keeps its previous state, full reconcile in ${this.retryDelay} ms`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.schedule();
    }, this.retryDelay);
    this.retryTimer.unref();
    this.retryDelay = Math.min(this.retryDelay * 2, MAX_RETRY_MS);
  }
}
