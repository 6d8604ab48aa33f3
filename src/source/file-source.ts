// The file datastore: Namespaces, Pods and NetworkPolicies from a YAML/JSON file or a directory of them,
// watched for changes. Each load is diffed against the previous one into the events a watch would have
// delivered.
//
// - Only files whose stat changed are read again, and only their objects are diffed, so an edit of one
//   small file costs the same whatever the size of the rest of the datastore.
// - fs.watch wakes the reload after 10 ms of quiet. A file written in place (truncate, then write, as
//   `>` and many editors do) notifies at each step, and a read between them sees an empty or cut file:
//   an empty file parses as no objects, which would delete what it defined (and open or close
//   traffic) until the next step. The quiet time lets such a write finish; it costs 10 ms of latency
//   per change, and a burst of notifications is read once. A periodic stat of every file catches what
//   fs.watch misses (network filesystems, a watched directory replaced).
// - A file that does not parse keeps its last good contents: the problem is reported (file, document)
//   and nothing it defined is deleted. An object that fails validation is reported through
//   sink.rejected; a Pod or Namespace keeps its last good version, a NetworkPolicy is dropped from the
//   state and left to the agent to enforce fail-closed.
import { readdirSync, readFileSync, statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { objectKey } from '../api';
import type { ClusterEvent, ClusterSource, ObjectKind, ObjectRef, SourceSink } from '../api';
import { InvalidInputError, InvalidObjectError, errorMessage } from '../errors';
import { addObject, emptyClusterObjects, parseManifestText } from './manifests';
import type { ClusterObjects } from './manifests';
import { eventsBetween } from './events';
import { isRecord } from '../json';

export interface FileSourceOptions {
  /** A manifest file, or a directory read recursively (*.yaml, *.yml, *.json). */
  readonly path: string;
  /** Quiet time after a change notification before reading (default 10 ms). */
  readonly debounceMs?: number;
  /** Period of the stat fallback (default 5,000 ms). */
  readonly pollMs?: number;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;
/** A load reads files for at most this long before it lets the HTTP server and the watches run. */
const YIELD_AFTER_MS = 20;
const LIST_KINDS = new Set(['List', 'NamespaceList', 'PodList', 'NetworkPolicyList']);
const ENFORCED_KINDS: ReadonlySet<string> = new Set<ObjectKind>(['Namespace', 'Pod', 'NetworkPolicy']);

interface Rejection {
  readonly kind: ObjectKind;
  readonly ref: ObjectRef;
  readonly reason: string;
  readonly raw: unknown;
}

/** What one file contributes: its last good documents, the valid objects in them, and the rejected ones. */
interface FileEntry {
  readonly stamp: string;
  readonly objects: ClusterObjects;
  readonly rejected: readonly Rejection[];
}

/** Identity of a file's contents without reading it (nanosecond mtime, size, inode). */
function stampOf(file: string): string | null {
  try {
    const s = statSync(file, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return null; // gone between listing and stat: it is treated as removed
  }
}

function rejectionKey(kind: ObjectKind, ref: ObjectRef): string {
  return `${kind}|${objectKey(ref)}`;
}

export class FileSource implements ClusterSource {
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private sink: SourceSink | null = null;
  private readonly files = new Map<string, FileEntry>();
  /** Rejections of the previous load, to end them when the object becomes valid or disappears. */
  private rejected = new Map<string, Rejection>();
  private readonly watchers = new Map<string, FSWatcher>();
  /** Paths the watches named since the last read; only those are looked at (the poll lists everything). */
  private pendingPaths = new Set<string>();
  private pendingFull = false;
  private loading = false;
  private syncedSent = false;
  private loadAgain = false;
  private debounce: NodeJS.Timeout | null = null;
  private poll: NodeJS.Timeout | null = null;
  /** The datastore path itself could not be read at the last load. */
  private unreadable = false;

  constructor(private readonly options: FileSourceOptions) {
    this.debounceMs = options.debounceMs ?? 10;
    this.pollMs = options.pollMs ?? 5_000;
  }

  start(sink: SourceSink): void {
    this.sink = sink;
    this.pendingFull = true;
    this.flush();
  }

  async stop(): Promise<void> {
    this.sink = null;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.debounce !== null) clearTimeout(this.debounce);
    if (this.poll !== null) clearInterval(this.poll);
    this.poll = null;
  }

  /**
   * One non-recursive watch per directory of the datastore (Node 20's recursive fs.watch misses events
   * on Linux), or of the file's directory for a single file, so that editors' rename-over-the-file is
   * seen. Kept in step with the directories each load finds.
   */
  private watchDirectories(dirs: ReadonlySet<string>, onlyName: string | null): void {
    for (const [dir, w] of this.watchers) {
      if (dirs.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          if (onlyName !== null && name !== null && name !== onlyName) return;
          this.schedule(name === null ? null : join(dir, name));
        });
        w.on('error', (err) => {
          w.close();
          this.watchers.delete(dir);
          this.report(`${dir}: file watch failed, changes are picked up every ${this.pollMs} ms: ${errorMessage(err)}`, err);
        });
        this.watchers.set(dir, w);
      } catch (err) {
        this.report(`${dir}: cannot watch, changes are picked up every ${this.pollMs} ms: ${errorMessage(err)}`, err);
      }
    }
  }

  /** A path the watch named (null: unknown, list everything); reads after `debounceMs` of quiet. */
  private schedule(path: string | null): void {
    if (path === null) this.pendingFull = true;
    else this.pendingPaths.add(path);
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.flush();
    }, this.debounceMs);
  }

  /**
   * Reads what is pending, one load at a time (a load yields to the event loop between files); what
   * arrives meanwhile is read right after. The first load ends with synced() and starts the poll.
   */
  private flush(): void {
    const sink = this.sink;
    if (sink === null) return;
    if (this.loading) {
      this.loadAgain = true;
      return;
    }
    const paths = this.pendingFull ? null : this.pendingPaths;
    this.pendingFull = false;
    this.pendingPaths = new Set();
    this.loading = true;
    void this.reload(paths).then((loaded) => {
      this.loading = false;
      if (this.sink !== sink) return;
      // Synced only once the datastore could be read: an empty state would wipe the table a restarted
      // agent keeps enforcing.
      if (loaded && !this.syncedSent) {
        this.syncedSent = true;
        sink.synced();
      }
      if (this.sink !== sink) return; // stopped from synced()
      if (this.poll === null) {
        this.poll = setInterval(() => {
          this.pendingFull = true;
          this.flush();
        }, this.pollMs);
      }
      if (this.loadAgain) {
        this.loadAgain = false;
        this.flush();
      }
    });
  }

  /** The manifest files, and the directories to watch (null when the datastore cannot be read). */
  private listFiles(): { files: string[]; dirs: Set<string>; onlyName: string | null } {
    const dirs = new Set<string>();
    let onlyName: string | null = null;
    const walk = (path: string, top: boolean): string[] => {
      let isDir: boolean;
      try {
        isDir = statSync(path).isDirectory();
      } catch (err) {
        if (top) {
          this.unreadable = true;
          this.report(`${path}: cannot read the datastore (${(err as NodeJS.ErrnoException).code ?? 'error'}); the last good state stays enforced`, err);
        }
        return [];
      }
      if (!isDir) {
        if (top) {
          dirs.add(dirname(path));
          onlyName = basename(path);
        }
        return top || MANIFEST_FILE.test(path) ? [path] : [];
      }
      dirs.add(path);
      try {
        return readdirSync(path).sort().flatMap((e) => walk(join(path, e), false));
      } catch (err) {
        this.report(`${path}: cannot list the directory: ${errorMessage(err)}`, err);
        return [];
      }
    };
    this.unreadable = false;
    const files = walk(this.options.path, true);
    return { files, dirs, onlyName };
  }

  /**
   * The files to read again and the files gone: among `paths` when the watches named them, otherwise
   * by listing the whole datastore. Null when the datastore cannot be read.
   */
  private changedFiles(paths: ReadonlySet<string> | null): { candidates: string[]; removed: string[] } | null {
    if (paths !== null) {
      const candidates: string[] = [];
      const removed: string[] = [];
      for (const path of paths) {
        let isDir: boolean;
        try {
          isDir = statSync(path).isDirectory();
        } catch {
          if (this.files.has(path)) removed.push(path);
          else if (this.watchers.has(path)) return this.changedFiles(null); // a directory went away
          continue;
        }
        // A new directory must be listed and watched.
        if (isDir) return this.changedFiles(null);
        if (this.files.has(path) || path === this.options.path || MANIFEST_FILE.test(path)) candidates.push(path);
      }
      return { candidates, removed };
    }
    const { files, dirs, onlyName } = this.listFiles();
    // An unreadable datastore keeps everything: deleting the whole cluster is never the safe reading.
    if (this.unreadable) return null;
    this.watchDirectories(dirs, onlyName);
    const present = new Set(files);
    return { candidates: files, removed: [...this.files.keys()].filter((f) => !present.has(f)) };
  }

  /** Reads what changed and delivers the events; false when the datastore could not be read. Never throws. */
  private async reload(paths: ReadonlySet<string> | null): Promise<boolean> {
    const sink = this.sink;
    if (sink === null) return false;
    const found = this.changedFiles(paths);
    if (found === null) return false;
    const { candidates: listed, removed } = found;
    const before = emptyClusterObjects();
    const after = emptyClusterObjects();
    let changed = false;
    const fresh: Rejection[] = [];
    for (const file of removed) {
      const entry = this.files.get(file);
      if (entry === undefined) continue;
      merge(before, entry.objects);
      this.files.delete(file);
      changed = true;
    }
    let slice = performance.now();
    for (const file of listed) {
      if (performance.now() - slice > YIELD_AFTER_MS) {
        await new Promise((r) => setImmediate(r));
        if (this.sink !== sink) return false;
        slice = performance.now();
      }
      const stamp = stampOf(file);
      const old = this.files.get(file);
      if (stamp === null || old?.stamp === stamp) continue;
      const entry = this.readFile(file, stamp, old);
      if (old !== undefined) merge(before, old.objects);
      merge(after, entry.objects);
      if (entry.rejected !== old?.rejected) fresh.push(...entry.rejected);
      this.files.set(file, entry);
      changed = true;
    }
    if (!changed) return true;
    const events = eventsBetween(before, after);
    const rejections = new Map<string, Rejection>();
    for (const entry of this.files.values()) for (const r of entry.rejected) rejections.set(rejectionKey(r.kind, r.ref), r);
    events.push(...this.endedRejections(rejections, events));
    this.rejected = rejections;
    if (events.length > 0) sink.events(events);
    // After the events: a policy that turned invalid is deleted by them, then enforced fail-closed.
    for (const r of fresh) sink.rejected(r.kind, r.ref, r.reason, r.raw);
    return true;
  }

  /**
   * Events that end a rejection the diff did not: an object valid again but equal to its last good
   * version, or one that is gone from the files while it was rejected.
   */
  private endedRejections(now: ReadonlyMap<string, Rejection>, events: readonly ClusterEvent[]): ClusterEvent[] {
    if (this.rejected.size === 0) return []; // the usual case: no need to index the events
    const touched = new Set(events.map((e) => (e.type === 'upsert' ? rejectionKey(e.kind, e.kind === 'Namespace' ? { namespace: '', name: e.object.name } : e.object) : rejectionKey(e.kind, e.kind === 'Namespace' ? { namespace: '', name: e.name } : e.ref))));
    const out: ClusterEvent[] = [];
    const ended = [...this.rejected].filter(([key]) => !now.has(key) && !touched.has(key));
    if (ended.length === 0) return out;
    const current = emptyClusterObjects();
    for (const entry of this.files.values()) merge(current, entry.objects);
    for (const [, r] of ended) {
      const valid = findObject(current, r.kind, r.ref);
      if (valid !== null) out.push(valid);
      else if (r.kind === 'Namespace') out.push({ type: 'delete', kind: 'Namespace', name: r.ref.name });
      else out.push({ type: 'delete', kind: r.kind, ref: r.ref });
    }
    return out;
  }

  private readFile(file: string, stamp: string, old: FileEntry | undefined): FileEntry {
    let docs: unknown[];
    try {
      docs = parseManifestText(file, readFileSync(file, 'utf8'));
    } catch (err) {
      this.report(`${errorMessage(err)}; its last good contents stay enforced`, err);
      return { stamp, objects: old?.objects ?? emptyClusterObjects(), rejected: old?.rejected ?? [] };
    }
    const objects = emptyClusterObjects();
    const rejected: Rejection[] = [];
    const carried = (kind: ObjectKind, ref: ObjectRef): void => {
      // A Pod or Namespace that turned invalid keeps its last good version.
      if (old === undefined || kind === 'NetworkPolicy') return;
      const previous = findObject(old.objects, kind, ref);
      if (previous?.type !== 'upsert') return;
      if (previous.kind === 'Pod') objects.pods.push(previous.object);
      else if (previous.kind === 'Namespace') objects.namespaces.push(previous.object);
    };
    flattenLists(docs).forEach(({ obj, where }) => {
      try {
        addObject(objects, file, obj, where);
      } catch (err) {
        const cause = err instanceof InvalidInputError && err.cause instanceof InvalidObjectError ? err.cause : err;
        if (cause instanceof InvalidObjectError && ENFORCED_KINDS.has(cause.kind)) {
          const kind = cause.kind as ObjectKind;
          rejected.push({ kind, ref: cause.ref, reason: `${file} ${where}: ${cause.message}`, raw: obj });
          carried(kind, cause.ref);
        } else {
          this.report(`${errorMessage(err)} (${where}); the object is ignored`, err);
        }
      }
    });
    return { stamp, objects, rejected };
  }

  /** A file is read again only when its stat changes, so each problem is reported once per change. */
  private report(message: string, cause: unknown): void {
    this.sink?.problem(message, cause);
  }
}

/** Documents and the items of `kind: List` documents, each with where it is in the file. */
function flattenLists(docs: readonly unknown[]): { obj: unknown; where: string }[] {
  const out: { obj: unknown; where: string }[] = [];
  const visit = (obj: unknown, where: string): void => {
    if (isRecord(obj) && typeof obj['kind'] === 'string' && LIST_KINDS.has(obj['kind']) && Array.isArray(obj['items'])) {
      obj['items'].forEach((item, j) => visit(item, `${where} item ${j + 1}`));
    } else if (obj !== null && obj !== undefined) {
      out.push({ obj, where });
    }
  };
  docs.forEach((d, i) => visit(d, `document ${i + 1}`));
  return out;
}

function merge(into: ClusterObjects, from: ClusterObjects): void {
  into.namespaces.push(...from.namespaces);
  into.pods.push(...from.pods);
  into.policies.push(...from.policies);
}

/** The object of that kind and name as an upsert event, or null. */
function findObject(objects: ClusterObjects, kind: ObjectKind, ref: ObjectRef): ClusterEvent | null {
  const key = objectKey(ref);
  switch (kind) {
    case 'Namespace': {
      const object = objects.namespaces.find((n) => n.name === ref.name);
      return object === undefined ? null : { type: 'upsert', kind, object };
    }
    case 'Pod': {
      const object = objects.pods.find((p) => objectKey(p) === key);
      return object === undefined ? null : { type: 'upsert', kind, object };
    }
    case 'NetworkPolicy': {
      const object = objects.policies.find((p) => objectKey(p) === key);
      return object === undefined ? null : { type: 'upsert', kind, object };
    }
  }
}
