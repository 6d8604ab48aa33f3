// List-then-watch of one kind, with the recovery the library's informer lacks: any failure restarts
// the watch after a capped, jittered backoff; a watch that goes silent is aborted by a watchdog and
// restarted; a 410 Gone (or a resourceVersion the server cannot serve) leads to a relist that is
// reconciled against what we hold as a diff. Of each object we keep its resourceVersion and a digest
// of its reduced record, never the object itself.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterEvent, ObjectKind, ObjectRef } from '../../api';
import { AgentError, InvalidObjectError, errorMessage } from '../../errors';
import { ApiRequestError, asStatus } from './api-client';
import type { ApiClient, Json, WatchEvent } from './api-client';
import { Backoff } from './backoff';
import type { BackoffOptions } from './backoff';
import { identityOf, refOfKey } from './kinds';
import type { KindSpec } from './kinds';

/** Why a watch was started again: it ended normally, its resourceVersion expired, it went silent, or it failed. */
export type WatchRestartReason = 'closed' | 'expired' | 'silent' | 'error';

/** What the source counts; the agent implements it with prom-client. */
export interface SourceMetrics {
  watchRestarted(kind: ObjectKind, reason: WatchRestartReason): void;
  /** A list after the first one completed (after a 410 or a watch that could not resume). */
  relisted(kind: ObjectKind): void;
  /** How many objects of the kind the source tracks now (valid and rejected). */
  objects(kind: ObjectKind, count: number): void;
}

/** The part of a pino Logger the source uses. */
export interface SourceLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ReflectorTiming {
  /** Objects per list page (limit). */
  readonly pageSize: number;
  /** The server-side timeout of a watch; each watch asks for it times a random factor in [1, 2). */
  readonly watchTimeoutSeconds: number;
  /** The watchdog: a watch with no event or bookmark for this long is aborted and restarted. */
  readonly silenceTimeoutMs: number;
  /** The longest a list page may take. */
  readonly requestTimeoutMs: number;
  readonly backoff: BackoffOptions;
  readonly random: () => number;
  /**
   * Read the initial state as a streaming list (a watch with sendInitialEvents=true) instead of
   * paginated lists; falls back to lists when the server refuses it (before Kubernetes 1.32, or 1.33
   * with the WatchList feature off).
   */
  readonly streamingList: boolean;
}

/** Where a reflector delivers; the source guards it so nothing is delivered after stop(). */
export interface ReflectorOutput {
  events(batch: readonly ClusterEvent[]): void;
  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void;
  problem(message: string, cause?: unknown): void;
  /** The level of the kind's reads: null when a list or a watch was just accepted, else why they fail. */
  health(kind: ObjectKind, failure: string | null): void;
  /** A list of this kind completed and its events were delivered. */
  listed(kind: ObjectKind, first: boolean): void;
  readonly metrics: SourceMetrics | undefined;
  readonly logger: SourceLogger | undefined;
}

/**
 * What we keep of an object: enough to tell whether a later read changes it. A pod's uid is part of its
 * record (PodState.uid), so a pod recreated under the same name has another digest.
 */
interface KnownObject {
  readonly resourceVersion: string;
  /** A digest of the reduced record, or "!" and the resourceVersion for a rejected object. */
  readonly digest: string;
}

interface Rejection {
  readonly ref: ObjectRef;
  readonly reason: string;
  readonly raw: Json;
}

/** What one object read from a list or a watch changes. */
interface Reconciled {
  readonly known: KnownObject;
  readonly event: ClusterEvent | null;
  readonly rejection: Rejection | null;
}

/** A complete listing being read (list pages, or the initial events of a streaming list), kept apart until complete. */
class Snapshot {
  readonly next = new Map<string, KnownObject>();
  readonly batch: ClusterEvent[] = [];
  readonly rejections: Rejection[] = [];
  /** Keys deleted while the snapshot was read (a streaming list may carry deletions before it ends). */
  readonly deleted = new Set<string>();
  readonly upserted = new Set<string>();
  readonly started = Date.now();
}

/** The bookmark annotation that ends the initial events of a streaming list. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

class WatchSilentError extends AgentError {
  constructor(spec: KindSpec, silenceMs: number) {
    super('KUBERNETES_API', `the watch of ${spec.resource} sent no event or bookmark for ${(silenceMs / 1000).toFixed(1)} s`);
  }
}

/** A watch that ran at least this long, or delivered an event, was healthy: restarting it needs no backoff. */
const HEALTHY_WATCH_MS = 1000;

function digestOf(event: ClusterEvent): string {
  const record = event.type === 'upsert' ? event.object : event;
  return createHash('md5').update(JSON.stringify(record)).digest('base64');
}

export class Reflector {
  private known = new Map<string, KnownObject>();
  private resourceVersion = '';
  private listedOnce = false;
  /** The last read failed (reported through health()) and none has succeeded since. */
  private failing = false;
  /** The state must be read in full (at start, and after the resourceVersion expired). */
  private needList = true;
  private streamingList: boolean;
  /** The snapshot a streaming list is filling, until its closing bookmark. */
  private initial: Snapshot | null = null;
  private readonly backoff: Backoff;

  constructor(
    private readonly spec: KindSpec,
    private readonly client: ApiClient,
    private readonly out: ReflectorOutput,
    private readonly timing: ReflectorTiming,
    private readonly signal: AbortSignal,
  ) {
    this.backoff = new Backoff(timing.backoff, timing.random);
    this.streamingList = timing.streamingList;
  }

  /** Lists and watches until the signal aborts; never rejects. */
  async run(): Promise<void> {
    while (!this.signal.aborted) {
      let delayMs = 0;
      try {
        if (this.needList && !this.streamingList) await this.list();
        const healthy = await this.watch();
        this.out.metrics?.watchRestarted(this.spec.kind, 'closed');
        this.out.logger?.debug({ kind: this.spec.kind, resourceVersion: this.resourceVersion }, 'watch closed by the server; resuming');
        delayMs = healthy ? 0 : this.backoff.next();
      } catch (err) {
        if (this.signal.aborted) break;
        const watching = !this.needList; // past the list: a watch that could resume failed
        if (this.needList && this.streamingList && isStreamingListRefused(err)) {
          this.streamingList = false;
          this.out.logger?.info({ kind: this.spec.kind, err: errorMessage(err) }, 'the API server refuses streaming lists; using paginated lists');
        } else if (isExpired(err)) {
          this.needList = true;
          // The first expiry relists at once; expiries in a row back off like any failure.
          const immediate = this.backoff.consecutiveFailures === 0;
          const backoffMs = this.backoff.next();
          delayMs = immediate ? 0 : backoffMs;
          if (watching) this.out.metrics?.watchRestarted(this.spec.kind, 'expired');
          this.out.logger?.info({ kind: this.spec.kind, resourceVersion: this.resourceVersion, err: errorMessage(err) }, 'resourceVersion expired; relisting');
        } else {
          const retryAfterMs = err instanceof ApiRequestError && err.retryAfterSeconds !== null ? err.retryAfterSeconds * 1000 : 0;
          delayMs = Math.max(this.backoff.next(), retryAfterMs);
          const silent = err instanceof WatchSilentError;
          if (watching) this.out.metrics?.watchRestarted(this.spec.kind, silent ? 'silent' : 'error');
          const verb = this.needList && !this.streamingList ? 'list' : 'watch';
          const message = `Kubernetes source: ${this.describe(err, verb)}; retrying in ${(delayMs / 1000).toFixed(1)} s, the last known state stays enforced`;
          // Logged once, by the sink (the agent logs every problem with its cause).
          this.failing = true;
          this.out.problem(message, err);
          this.out.health(this.spec.kind, message);
        }
      }
      if (delayMs > 0) {
        try {
          await sleep(delayMs, undefined, { signal: this.signal });
        } catch {
          break; // stopped while waiting
        }
      }
    }
  }

  /** Lists every page, then delivers the difference with what we held as one batch. */
  private async list(): Promise<void> {
    const snapshot = new Snapshot();
    let continueToken = '';
    let listResourceVersion = '';
    let pages = 0;
    let wireBytes = 0;
    do {
      // No resourceVersion: a consistent read (served from the watch cache since Kubernetes 1.31).
      const query: Record<string, string> = { limit: String(this.timing.pageSize) };
      if (continueToken !== '') query['continue'] = continueToken;
      const request = childAbort(this.signal);
      const timer = setTimeout(() => request.abort(), this.timing.requestTimeoutMs);
      const page = await this.client.listPage(this.spec.path, query, request.signal).catch((err: unknown) => {
        if (!this.signal.aborted && request.signal.aborted) {
          throw new ApiRequestError(`the list of ${this.spec.resource} took longer than ${this.timing.requestTimeoutMs / 1000} s`, null, null, { cause: err });
        }
        throw err;
      }).finally(() => {
        clearTimeout(timer);
        request.dispose();
      });
      if (pages === 0) listResourceVersion = page.resourceVersion;
      pages += 1;
      wireBytes += page.wireBytes;
      for (const raw of page.items) this.addToSnapshot(snapshot, raw);
      continueToken = page.continueToken;
    } while (continueToken !== '');
    this.commit(snapshot, listResourceVersion, { pages, wireBytes });
  }

  private addToSnapshot(snapshot: Snapshot, raw: Json): void {
    const id = identityOf(this.spec, raw);
    const r = this.reconcile(raw, this.known.get(id.key));
    snapshot.next.set(id.key, r.known);
    snapshot.deleted.delete(id.key);
    if (r.event !== null) {
      snapshot.batch.push(r.event);
      snapshot.upserted.add(id.key);
    }
    if (r.rejection !== null) snapshot.rejections.push(r.rejection);
  }

  private deleteFromSnapshot(snapshot: Snapshot, raw: Json): void {
    const { key } = identityOf(this.spec, raw);
    snapshot.next.delete(key);
    if (snapshot.deleted.has(key)) return;
    snapshot.deleted.add(key);
    if (this.known.has(key) || snapshot.upserted.has(key)) snapshot.batch.push(this.spec.delete(refOfKey(this.spec, key)));
  }

  /** A read succeeded: the kind's level is ok (reported after a failure, and at each complete list). */
  private readsAgain(always: boolean): void {
    if (!this.failing && !always) return;
    this.failing = false;
    this.out.health(this.spec.kind, null);
  }

  /** Makes a complete snapshot our state: deletes what it lacks, delivers its changes as one batch. */
  private commit(snapshot: Snapshot, resourceVersion: string, stats: Record<string, number>): void {
    for (const key of this.known.keys()) {
      if (!snapshot.next.has(key) && !snapshot.deleted.has(key)) snapshot.batch.push(this.spec.delete(refOfKey(this.spec, key)));
    }
    this.known = snapshot.next;
    this.resourceVersion = resourceVersion;
    this.needList = false;
    this.backoff.reset();
    this.readsAgain(true);
    this.out.logger?.info(
      { kind: this.spec.kind, objects: this.known.size, changes: snapshot.batch.length, rejected: snapshot.rejections.length, ...stats, ms: Date.now() - snapshot.started, resourceVersion },
      this.listedOnce ? 'relisted' : 'listed',
    );
    if (snapshot.batch.length > 0) this.out.events(snapshot.batch);
    for (const r of snapshot.rejections) this.out.rejected(this.spec.kind, r.ref, r.reason, r.raw);
    this.out.metrics?.objects(this.spec.kind, this.known.size);
    if (this.listedOnce) this.out.metrics?.relisted(this.spec.kind);
    this.out.listed(this.spec.kind, !this.listedOnce);
    this.listedOnce = true;
  }

  /**
   * Watches from the resourceVersion we hold until the server ends the stream (resolves: whether the
   * watch was healthy) or something fails (rejects). A watchdog aborts it when it goes silent. When the
   * state must be read in full and streaming lists are on, the watch starts with the initial state
   * (sendInitialEvents) and commits it at the closing bookmark, as a list would.
   */
  private async watch(): Promise<boolean> {
    const request = childAbort(this.signal);
    let silent = false;
    let sawEvent = false;
    const started = Date.now();
    const watchdog = setTimeout(() => {
      silent = true;
      request.abort();
    }, this.timing.silenceTimeoutMs);
    const timeoutSeconds = Math.floor(this.timing.watchTimeoutSeconds * (1 + this.timing.random()));
    const query: Record<string, string> = { allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) };
    if (this.needList) {
      // No resourceVersion: the initial state of a consistent read, from the watch cache.
      query['sendInitialEvents'] = 'true';
      query['resourceVersionMatch'] = 'NotOlderThan';
      this.initial = new Snapshot();
    } else if (this.resourceVersion !== '') {
      query['resourceVersion'] = this.resourceVersion;
    }
    try {
      await this.client.watch(this.spec.path, query, (events) => {
        watchdog.refresh();
        if (!sawEvent) {
          sawEvent = true;
          this.backoff.reset();
        }
        this.apply(events);
      }, request.signal, () => this.readsAgain(false));
    } catch (err) {
      if (silent && !this.signal.aborted) throw new WatchSilentError(this.spec, this.timing.silenceTimeoutMs);
      throw err;
    } finally {
      clearTimeout(watchdog);
      request.dispose();
      this.initial = null; // an initial state cut short is dropped; the next attempt reads it again
    }
    return sawEvent || Date.now() - started >= HEALTHY_WATCH_MS;
  }

  /** Applies the events of one chunk of a watch stream; an ERROR event ends the watch (throws). */
  private apply(events: readonly WatchEvent[]): void {
    let batch: ClusterEvent[] = [];
    const flush = (): void => {
      if (batch.length > 0) this.out.events(batch);
      batch = [];
    };
    for (const { type, object } of events) {
      if (type === 'ERROR') {
        flush();
        const status = asStatus(object);
        throw new ApiRequestError(`watch ERROR event: ${status?.code ?? '?'} ${status?.reason ?? ''} ${status?.message ?? ''}`.trim(), status?.code ?? null, status);
      }
      const id = identityOf(this.spec, object);
      if (this.initial !== null) {
        this.applyInitial(this.initial, type, object);
        continue;
      }
      if (type === 'ADDED' || type === 'MODIFIED') {
        const r = this.reconcile(object, this.known.get(id.key));
        this.known.set(id.key, r.known);
        if (r.event !== null) batch.push(r.event);
        if (r.rejection !== null) {
          flush();
          this.out.rejected(this.spec.kind, r.rejection.ref, r.rejection.reason, r.rejection.raw);
        }
      } else if (type === 'DELETED') {
        if (this.known.delete(id.key)) batch.push(this.spec.delete(refOfKey(this.spec, id.key)));
      } else if (type !== 'BOOKMARK') {
        this.out.logger?.warn({ kind: this.spec.kind, type }, 'unknown watch event type; ignored');
        continue;
      }
      if (id.resourceVersion !== '') this.resourceVersion = id.resourceVersion;
    }
    flush();
    this.out.metrics?.objects(this.spec.kind, this.known.size);
  }

  /** An event of a streaming list before its closing bookmark: it goes to the snapshot, not to the sink. */
  private applyInitial(snapshot: Snapshot, type: WatchEvent['type'], object: Json): void {
    if (type === 'ADDED' || type === 'MODIFIED') this.addToSnapshot(snapshot, object);
    else if (type === 'DELETED') this.deleteFromSnapshot(snapshot, object);
    else if (type === 'BOOKMARK') {
      const meta = typeof object['metadata'] === 'object' && object['metadata'] !== null ? (object['metadata'] as Json) : {};
      const annotations = typeof meta['annotations'] === 'object' && meta['annotations'] !== null ? (meta['annotations'] as Json) : {};
      if (annotations[INITIAL_EVENTS_END] === 'true') {
        this.initial = null;
        this.commit(snapshot, identityOf(this.spec, object).resourceVersion, { streamed: 1 });
      }
    }
  }

  /**
   * Compares an object read from the server with what we hold under its key. An unchanged
   * resourceVersion is skipped without parsing; a changed one is reduced, and an upsert is emitted
   * only if the reduced record differs (pod status churn that enforcement does not read emits nothing).
   * A pod deleted and recreated under the same name has a new uid in its record, hence one upsert.
   */
  private reconcile(raw: Json, previous: KnownObject | undefined): Reconciled {
    const id = identityOf(this.spec, raw);
    if (previous !== undefined && previous.resourceVersion === id.resourceVersion && id.resourceVersion !== '') {
      return { known: previous, event: null, rejection: null };
    }
    let event: ClusterEvent;
    try {
      event = this.spec.upsert(raw);
    } catch (err) {
      const ref = err instanceof InvalidObjectError ? err.ref : id.ref;
      return {
        known: { resourceVersion: id.resourceVersion, digest: `!${id.resourceVersion}` },
        event: null,
        rejection: { ref, reason: errorMessage(err), raw },
      };
    }
    const digest = digestOf(event);
    const known = { resourceVersion: id.resourceVersion, digest };
    return { known, event: previous?.digest === digest ? null : event, rejection: null };
  }

  /** A failure in words an operator can act on; RBAC refusals name the resource and the verb to grant. */
  private describe(err: unknown, verb: 'list' | 'watch'): string {
    const what = `${this.spec.resource}${this.spec.namespaced ? ' in all namespaces' : ''}`;
    if (err instanceof WatchSilentError) return `${err.message}: restarting it`;
    if (!(err instanceof ApiRequestError)) return `${verb} ${what}: ${errorMessage(err)}`;
    const group = this.spec.group === '' ? 'the core API group ""' : `API group "${this.spec.group}"`;
    if (err.statusCode === 403) {
      return `cannot ${verb} ${what}: 403 Forbidden${err.status?.message !== undefined ? ` (${err.status.message})` : ''}. ` +
        `Grant the agent's ServiceAccount the verbs "list" and "watch" on "${this.spec.resource}" in ${group} with a ClusterRole and ClusterRoleBinding`;
    }
    if (err.statusCode === 401) {
      return `cannot ${verb} ${what}: 401 Unauthorized: the API server refused the credentials (an expired token, or the wrong user in the kubeconfig)`;
    }
    return `${verb} ${what}: ${err.message}`;
  }
}

/**
 * An abort signal for one request: aborted with the source (stop) or on its own (timeout, watchdog).
 * A plain listener rather than AbortSignal.any, removed when the request ends, so that months of
 * restarts leave nothing attached to the source's signal.
 */
function childAbort(parent: AbortSignal): { readonly signal: AbortSignal; abort(): void; dispose(): void } {
  const controller = new AbortController();
  const onParentAbort = (): void => controller.abort();
  if (parent.aborted) controller.abort();
  else parent.addEventListener('abort', onParentAbort, { once: true });
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    dispose: () => parent.removeEventListener('abort', onParentAbort),
  };
}

/** The server does not serve streaming lists: it rejects the parameters (400 or 422 Invalid). */
function isStreamingListRefused(err: unknown): boolean {
  return err instanceof ApiRequestError && (err.statusCode === 400 || err.statusCode === 422);
}

/** 410 Gone, or a resourceVersion newer than the server has (a lagging API server after a failover). */
function isExpired(err: unknown): boolean {
  if (!(err instanceof ApiRequestError)) return false;
  if (err.expired) return true;
  return err.statusCode === 504 && /too large resource version/i.test(err.status?.message ?? '');
}
