// A local HTTP server that speaks the Kubernetes list/watch protocol for the three kinds the agent
// reads, and fails on purpose: Status responses (403, 410, 500), ERROR events in a watch, connections
// reset mid-watch, watches that go silent, an outage during which objects change and history is
// compacted. It counts the bytes it serves, for the scaling figures.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export type Resource = 'namespaces' | 'pods' | 'networkpolicies';
export type Verb = 'list' | 'watch';
// Test objects are free-form JSON, edited in place by the tests.
type Obj = Record<string, any>;

const PATHS: Record<string, Resource> = {
  '/api/v1/namespaces': 'namespaces',
  '/api/v1/pods': 'pods',
  '/apis/networking.k8s.io/v1/networkpolicies': 'networkpolicies',
};
const LIST_KIND: Record<Resource, [string, string]> = {
  namespaces: ['v1', 'NamespaceList'],
  pods: ['v1', 'PodList'],
  networkpolicies: ['networking.k8s.io/v1', 'NetworkPolicyList'],
};

/** What the next request of a resource and verb gets instead of a normal answer. */
export type Fault =
  | { readonly kind: 'status'; readonly code: number; readonly message?: string; readonly retryAfter?: number }
  | { readonly kind: 'errorEvent'; readonly code: number; readonly message?: string }
  | { readonly kind: 'silent' }
  | { readonly kind: 'reset' };

export interface RequestRecord {
  readonly verb: Verb;
  readonly resource: Resource;
  readonly query: Record<string, string>;
  readonly authorization: string | undefined;
}

interface HistoryEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly rv: number;
  readonly line: string;
}

interface Watcher {
  readonly resource: Resource;
  readonly res: http.ServerResponse;
  readonly socket: Socket;
}

export function keyOf(obj: Obj): string {
  return obj.metadata.namespace !== undefined ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export class FakeApiServer {
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  private readonly sockets = new Set<Socket>();
  /** Objects as the JSON text they are served as (a fraction of the memory of parsed objects at 100,000 pods). */
  private readonly objects: Record<Resource, Map<string, string>> = { namespaces: new Map(), pods: new Map(), networkpolicies: new Map() };
  private readonly history: Record<Resource, HistoryEvent[]> = { namespaces: [], pods: [], networkpolicies: [] };
  private readonly snapshots = new Map<string, { rv: number; items: string[] }>();
  private readonly faults = new Map<string, Fault[]>();
  private watchers: Watcher[] = [];
  private rv = 100;
  private compactedRv = 0;
  private uidCounter = 0;
  private dir = '';
  private bookmarkTimer: NodeJS.Timeout | null = null;
  /** While down, every connection is reset as soon as it is accepted. */
  down = false;
  /** Serves streaming lists (sendInitialEvents=true), as kube-apiserver 1.32 and 1.34+ do by default. */
  watchList = true;
  /** Compress list responses larger than this when the client accepts gzip (the API server: 128 KiB). */
  gzipAboveBytes = 128 * 1024;
  readonly requests: RequestRecord[] = [];
  /** Bytes served: lists on the wire (gzip when asked), lists before compression, watch streams. */
  readonly bytes = { list: 0, watch: 0, listUncompressed: 0 };
  kubeconfigPath = '';

  async start(): Promise<void> {
    this.server.on('connection', (socket: Socket) => {
      if (this.down) {
        socket.resetAndDestroy();
        return;
      }
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.dir = mkdtempSync(join(tmpdir(), 'netpol-fake-apiserver-'));
    this.kubeconfigPath = join(this.dir, 'kubeconfig');
    writeFileSync(this.kubeconfigPath, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'agent', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'agent' } }],
    }));
  }

  /** Sends a BOOKMARK to every open watch at this interval, as the API server does about every minute. */
  sendBookmarksEvery(ms: number): void {
    if (this.bookmarkTimer !== null) clearInterval(this.bookmarkTimer);
    this.bookmarkTimer = setInterval(() => {
      for (const r of Object.keys(this.objects) as Resource[]) this.bookmark(r);
    }, ms);
  }

  async close(): Promise<void> {
    if (this.bookmarkTimer !== null) clearInterval(this.bookmarkTimer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Creates or replaces an object (a new uid unless it has one), like a write through the API. */
  put(resource: Resource, object: Obj): Obj {
    const obj = structuredClone(object);
    const key = keyOf(obj);
    const prevText = this.objects[resource].get(key);
    const prev = prevText === undefined ? undefined : (JSON.parse(prevText) as Obj);
    this.rv += 1;
    obj.metadata.uid ??= prev?.metadata.uid ?? `uid-${++this.uidCounter}`;
    obj.metadata.resourceVersion = String(this.rv);
    const text = JSON.stringify(obj);
    this.objects[resource].set(key, text);
    this.record(resource, prev === undefined ? 'ADDED' : 'MODIFIED', text);
    return obj;
  }

  remove(resource: Resource, key: string): void {
    const prevText = this.objects[resource].get(key);
    if (prevText === undefined) throw new Error(`no ${resource} ${key}`);
    const prev = JSON.parse(prevText) as Obj;
    this.objects[resource].delete(key);
    this.rv += 1;
    this.record(resource, 'DELETED', JSON.stringify({ ...prev, metadata: { ...prev.metadata, resourceVersion: String(this.rv) } }));
  }

  /** Forgets history up to now: a watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    for (const r of Object.keys(this.history) as Resource[]) this.history[r] = [];
  }

  /** Sends a BOOKMARK to the open watches of a resource. */
  bookmark(resource: Resource): void {
    const line = JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Bookmark', metadata: { resourceVersion: String(this.rv) } } }) + '\n';
    for (const w of this.watchers) if (w.resource === resource) this.write(w.res, line);
  }

  /** Resets the connections of the open watches (all resources, or one). */
  resetWatches(resource?: Resource): void {
    for (const w of this.watchers) if (resource === undefined || w.resource === resource) w.socket.resetAndDestroy();
    this.watchers = this.watchers.filter((w) => resource !== undefined && w.resource !== resource);
  }

  /** Ends the open watches of a resource cleanly, as the server does at timeoutSeconds. */
  endWatches(resource: Resource): void {
    for (const w of this.watchers) if (w.resource === resource) w.res.end();
    this.watchers = this.watchers.filter((w) => w.resource !== resource);
  }

  openWatches(resource: Resource): number {
    return this.watchers.filter((w) => w.resource === resource).length;
  }

  failNext(resource: Resource, verb: Verb, fault: Fault, times = 1): void {
    const k = `${resource} ${verb}`;
    this.faults.set(k, [...(this.faults.get(k) ?? []), ...Array.from({ length: times }, () => fault)]);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  count(resource: Resource, verb: Verb): number {
    return this.requests.filter((r) => r.resource === resource && r.verb === verb).length;
  }

  private record(resource: Resource, type: HistoryEvent['type'], objectText: string): void {
    const line = `{"type":"${type}","object":${objectText}}\n`;
    this.history[resource].push({ type, rv: this.rv, line });
    for (const w of this.watchers) if (w.resource === resource) this.write(w.res, line);
  }

  private write(res: http.ServerResponse, text: string): void {
    this.bytes.watch += Buffer.byteLength(text);
    res.write(text);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const resource = PATHS[url.pathname];
    if (resource === undefined) return this.status(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);
    const query = Object.fromEntries(url.searchParams);
    const verb: Verb = query['watch'] === 'true' ? 'watch' : 'list';
    this.requests.push({ verb, resource, query, authorization: req.headers.authorization });
    const queue = this.faults.get(`${resource} ${verb}`);
    const fault = queue?.shift();
    if (fault !== undefined) {
      switch (fault.kind) {
        case 'reset':
          req.socket.resetAndDestroy();
          return;
        case 'status':
          if (fault.retryAfter !== undefined) res.setHeader('retry-after', String(fault.retryAfter));
          return this.status(res, fault.code, REASONS[fault.code] ?? 'InternalError', fault.message ?? `injected ${fault.code}`);
        case 'errorEvent':
          res.writeHead(200, { 'content-type': 'application/json' });
          this.write(res, JSON.stringify({ type: 'ERROR', object: statusObject(fault.code, REASONS[fault.code] ?? 'InternalError', fault.message ?? `injected ${fault.code}`) }) + '\n');
          res.end();
          return;
        case 'silent':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.flushHeaders();
          return; // held open, never written to
      }
    }
    if (verb === 'list') this.list(req, res, resource, query);
    else this.watch(req, res, resource, query);
  }

  private list(req: http.IncomingMessage, res: http.ServerResponse, resource: Resource, query: Record<string, string>): void {
    const limit = Number(query['limit'] ?? '0');
    let snapshot: { rv: number; items: string[] };
    let offset = 0;
    const token = query['continue'];
    if (token !== undefined && token !== '') {
      const [id, at] = token.split(':');
      const found = this.snapshots.get(id ?? '');
      if (found === undefined || found.rv < this.compactedRv) {
        return this.status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      }
      snapshot = found;
      offset = Number(at);
    } else {
      const entries = [...this.objects[resource].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      snapshot = { rv: this.rv, items: entries.map(([, text]) => text) };
    }
    const end = limit > 0 ? Math.min(offset + limit, snapshot.items.length) : snapshot.items.length;
    const metadata: Obj = { resourceVersion: String(snapshot.rv) };
    if (end < snapshot.items.length) {
      const id = `s${this.snapshots.size + 1}`;
      if (token === undefined || token === '') this.snapshots.set(id, snapshot);
      const snapshotId = token !== undefined && token !== '' ? token.split(':')[0] : id;
      metadata['continue'] = `${snapshotId}:${end}`;
      metadata['remainingItemCount'] = snapshot.items.length - end;
    }
    const [apiVersion, kind] = LIST_KIND[resource];
    const body = Buffer.from(`{"kind":"${kind}","apiVersion":"${apiVersion}","metadata":${JSON.stringify(metadata)},"items":[${snapshot.items.slice(offset, end).join(',')}]}`);
    const gzip = body.length > this.gzipAboveBytes && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const wire = gzip ? gzipSync(body) : body;
    this.bytes.list += wire.length;
    this.bytes.listUncompressed += body.length;
    res.writeHead(200, { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    res.end(wire);
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, resource: Resource, query: Record<string, string>): void {
    if (query['sendInitialEvents'] === 'true') return this.streamingList(req, res, resource, query);
    const from = query['resourceVersion'] === undefined || query['resourceVersion'] === '' ? this.rv : Number(query['resourceVersion']);
    // kube-apiserver flushes a watch's headers at once, before any event.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    if (from < this.compactedRv) {
      this.write(res, JSON.stringify({ type: 'ERROR', object: statusObject(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) }) + '\n');
      res.end();
      return;
    }
    for (const e of this.history[resource]) if (e.rv > from) this.write(res, e.line);
    this.keepWatching(req, res, resource, query);
  }

  /** A watch that starts with every object as ADDED, then a bookmark marking the end of the initial events. */
  private streamingList(req: http.IncomingMessage, res: http.ServerResponse, resource: Resource, query: Record<string, string>): void {
    if (!this.watchList || query['resourceVersionMatch'] !== 'NotOlderThan') {
      const message = this.watchList
        ? 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'
        : 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled';
      return this.status(res, 422, 'Invalid', message);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    const entries = [...this.objects[resource].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [, text] of entries) this.write(res, `{"type":"ADDED","object":${text}}\n`);
    const end = { kind: 'Bookmark', metadata: { resourceVersion: String(this.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } };
    this.write(res, JSON.stringify({ type: 'BOOKMARK', object: end }) + '\n');
    this.keepWatching(req, res, resource, query);
  }

  private keepWatching(req: http.IncomingMessage, res: http.ServerResponse, resource: Resource, query: Record<string, string>): void {
    const watcher = { resource, res, socket: req.socket };
    this.watchers.push(watcher);
    const timeout = Number(query['timeoutSeconds'] ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : null;
    res.on('close', () => {
      if (timer !== null) clearTimeout(timer);
      this.watchers = this.watchers.filter((w) => w !== watcher);
    });
  }

  private status(res: http.ServerResponse, code: number, reason: string, message: string): void {
    const body = JSON.stringify(statusObject(code, reason, message));
    this.bytes.list += body.length;
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(body);
  }
}

const REASONS: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 410: 'Expired', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable' };

function statusObject(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** The message the API server writes when RBAC refuses a request. */
export function forbiddenMessage(verb: Verb, resource: Resource, group = ''): string {
  return `${resource}${group === '' ? '' : `.${group}`} is forbidden: User "system:serviceaccount:kube-system:netpol-agent" cannot ${verb} resource "${resource}" in API group "${group}" at the cluster scope`;
}
