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
// - The datastore never fails open. A file that does not parse, cannot be read, is empty after it held
//   objects, or holds a document that is not a Kubernetes object (garbage, a line of text, a cut file
//   read as a scalar) keeps its last good contents; so does every file when the datastore path itself
//   cannot be read (deleted, a symbolic link to a missing target): nothing it defined is deleted. The
//   problem is logged once per reason and the datastore's level (sink.health('file', ...)) names it
//   until the file is good again. Unreadable paths are read again at each poll; a file that does not
//   parse, when it changes. Only a file removed from a datastore directory deletes its objects.
// - An object that fails validation is reported through sink.rejected; a Pod or Namespace keeps its
//   last good version, a NetworkPolicy is dropped from the state and left to the agent to enforce
//   fail-closed.
import { lstatSync, readdirSync, readFileSync, statSync, watch } from 'node:fs';
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

/** The datastore's part name in sink.health(). */
export const FILE_SOURCE_PART = 'file';

/** What one file contributes: its last good documents, the valid objects in them, and the rejected ones. */
interface FileEntry {
  /** Null while the file cannot be read: it is read again at the next poll whatever its stat says. */
  readonly stamp: string | null;
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

/** The path exists as a name (a symbolic link, possibly to nothing) although it cannot be followed. */
function nameExists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

function objectCount(objects: ClusterObjects): number {
  return objects.namespaces.length + objects.pods.length + objects.policies.length;
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
  /** Paths the last listing could not read (the datastore, a directory, a broken link), and why. */
  private pathFailures = new Map<string, string>();
  /** Files whose contents cannot be their state now, and why. With pathFailures: the datastore's level. */
  private readonly fileFailures = new Map<string, string>();

  constructor(private readonly options: FileSourceOptions) {
    this.debounceMs = options.debounceMs ?? 10;
    this.pollMs = options.pollMs ?? 5_000;
  }

  start(sink: SourceSink): void {
    this.sink = sink;
    sink.health(FILE_SOURCE_PART, `${this.options.path}: not read yet`);
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
      const failures = [...this.pathFailures.values(), ...this.fileFailures.values()];
      sink.health(FILE_SOURCE_PART, failures.length === 0 ? null : failures.join('; '));
      // Synced only once every file could be read: an empty or partial state would wipe what the table
      // a restarted agent keeps enforcing holds.
      if (loaded && failures.length === 0 && !this.syncedSent) {
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

  /** Records that a file's contents cannot be its state (logged once per reason), or with null that they can. */
  private setFileFailure(file: string, reason: string | null, cause?: unknown): void {
    if (reason === null) {
      this.fileFailures.delete(file);
      return;
    }
    if (this.fileFailures.get(file) !== reason) this.report(reason, cause);
    this.fileFailures.set(file, reason);
  }

  /** Why `path` (which stat refused) cannot be read, in words that say what stays enforced. */
  private unreadableReason(path: string, err: unknown, what: string): string {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const link = nameExists(path) ? 'a symbolic link to a missing target, ' : '';
    return `${path}: cannot read ${what} (${link}${code}); the last good state stays enforced, retried every ${this.pollMs} ms`;
  }

  /**
   * The manifest files, the directories to watch, and the paths under which nothing may be deleted
   * because they cannot be read now (a broken link, a directory that cannot be listed). Null when the
   * datastore path itself cannot be read.
   */
  private listFiles(): { files: string[]; dirs: Set<string>; onlyName: string | null; kept: string[] } | null {
    const dirs = new Set<string>();
    const kept: string[] = [];
    const failures = new Map<string, string>();
    const fail = (path: string, reason: string, cause: unknown): void => {
      if (this.pathFailures.get(path) !== reason) this.report(reason, cause);
      failures.set(path, reason);
      kept.push(path);
    };
    let onlyName: string | null = null;
    const walk = (path: string, top: boolean): string[] => {
      let isDir: boolean;
      try {
        isDir = statSync(path).isDirectory();
      } catch (err) {
        // Gone from a directory: removed. Still there as a name, or the datastore itself: unreadable.
        if (top || nameExists(path)) fail(path, this.unreadableReason(path, err, top ? 'the datastore' : 'the file'), err);
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
        fail(path, `${path}: cannot list the directory (${errorMessage(err)}); the last good state of its files stays enforced`, err);
        return [];
      }
    };
    const files = walk(this.options.path, true);
    this.pathFailures = failures;
    if (failures.has(this.options.path)) return null;
    return { files, dirs, onlyName, kept };
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
          // The datastore itself, a broken link or a directory: the listing tells which, and keeps.
          if (path === this.options.path || nameExists(path) || this.watchers.has(path)) return this.changedFiles(null);
          if (this.files.has(path)) removed.push(path);
          continue;
        }
        // A new directory must be listed and watched.
        if (isDir) return this.changedFiles(null);
        if (this.files.has(path) || path === this.options.path || MANIFEST_FILE.test(path)) candidates.push(path);
      }
      return { candidates, removed };
    }
    const listing = this.listFiles();
    // An unreadable datastore keeps everything: deleting the whole cluster is never the safe reading.
    if (listing === null) return null;
    const { files, dirs, onlyName, kept } = listing;
    this.watchDirectories(dirs, onlyName);
    const present = new Set(files);
    const keptUnder = (file: string): boolean => kept.some((k) => file === k || file.startsWith(`${k}/`));
    return { candidates: files, removed: [...this.files.keys()].filter((f) => !present.has(f) && !keptUnder(f)) };
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
      this.fileFailures.delete(file);
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
      if (entry === null) continue;
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

  /**
   * The file's new entry, or null when the file cannot be its contents (unreadable, not YAML/JSON, a
   * document that is not a Kubernetes object, empty after it held objects): its last good contents
   * stay, with the stamp that says when to read it again.
   */
  private readFile(file: string, stamp: string, old: FileEntry | undefined): FileEntry | null {
    const keep = (reason: string, retryAtPoll: boolean, cause?: unknown): null => {
      this.setFileFailure(file, `${reason}; its last good contents stay enforced`, cause);
      // A parse error is read again when the file changes; a read error at each poll.
      if (old !== undefined) this.files.set(file, { ...old, stamp: retryAtPoll ? null : stamp });
      return null;
    };
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return keep(`${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, true, err);
    }
    let docs: unknown[];
    try {
      docs = parseManifestText(file, text);
    } catch (err) {
      return keep(errorMessage(err), false, err);
    }
    const items = flattenLists(docs);
    for (const { obj, where } of items) {
      const what = notAnObject(obj);
      if (what !== null) return keep(`${file}: ${where} is not a Kubernetes object (${what}): garbage, or a file cut while written (write a temporary file and rename it over this one)`, false);
    }
    if (items.length === 0 && old !== undefined && objectCount(old.objects) > 0) {
      return keep(`${file}: is empty but held ${objectCount(old.objects)} object(s), as a file cut while written would be; to delete them all, write "kind: List" with "items: []" (or, in a datastore directory, remove the file)`, false);
    }
    this.setFileFailure(file, null);
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
    items.forEach(({ obj, where }) => {
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

/**
 * What a document is when it cannot be a Kubernetes object, or null: a scalar or a sequence (garbage, a
 * line of text), a mapping without a kind, a List without items, or a kind that is the beginning of one
 * we read ("Netw"): what reading a file cut while written gives. Read as no object, any of them would
 * delete what the file defined.
 */
function notAnObject(obj: unknown): string | null {
  if (!isRecord(obj)) return JSON.stringify(obj).slice(0, 40);
  const kind = obj['kind'];
  if (typeof kind !== 'string' || kind === '') return 'a mapping without a kind';
  if (LIST_KINDS.has(kind)) return `a ${kind} without an items list`;
  if (ENFORCED_KINDS.has(kind)) return null;
  const cutFrom = [...ENFORCED_KINDS, ...LIST_KINDS].find((k) => k.startsWith(kind));
  return cutFrom === undefined ? null : `kind ${JSON.stringify(kind)}, the beginning of ${cutFrom}`;
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
