// A small Kubernetes API client for the API tier: JSON requests and watches over HTTPS with the admin
// client certificate, through a Unix socket that a relay inside the control plane's namespace forwards to
// the API server (the test process lives in the root namespace, which nothing links to the cluster).
import { request, Agent } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; uid?: string; resourceVersion?: string; deletionTimestamp?: string };
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

export class KubeError extends Error {
  constructor(readonly status: number, readonly method: string, readonly path: string, body: string) {
    super(`${method} ${path}: HTTP ${status}: ${body.slice(0, 400)}`);
  }
}

export type PatchType = 'merge' | 'json' | 'strategic';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

/** The REST path of an object (or its collection when name is omitted). */
export function pathOf(kind: 'Namespace' | 'Pod' | 'NetworkPolicy', namespace?: string, name?: string): string {
  const base = kind === 'Namespace' ? '/api/v1/namespaces'
    : kind === 'Pod' ? `/api/v1/namespaces/${namespace ?? ''}/pods`
      : `/apis/networking.k8s.io/v1/namespaces/${namespace ?? ''}/networkpolicies`;
  return name === undefined ? base : `${base}/${name}`;
}

export class KubeClient {
  private readonly agent: Agent;

  /** pki: the cluster's PKI folder (ca.crt, admin.crt, admin.key); socket: a relay to the API server. */
  constructor(pki: string, private readonly socket: string) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      ca: readFileSync(join(pki, 'ca.crt')),
      cert: readFileSync(join(pki, 'admin.crt')),
      key: readFileSync(join(pki, 'admin.key')),
    });
  }

  close(): void {
    this.agent.destroy();
  }

  /** One request; rejects with a KubeError on a non-2xx answer. */
  async call<T = KubeObject>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<T> {
    const text = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request({
        agent: this.agent,
        socketPath: this.socket,
        host: '127.0.0.1',
        method,
        path,
        headers: { accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }) },
        timeout: timeoutMs,
      }, (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body: data })).on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
    if (text.status < 200 || text.status > 299) throw new KubeError(text.status, method, path, text.body);
    // /readyz and friends answer plain text.
    return (text.body === '' ? {} : text.body.startsWith('{') ? JSON.parse(text.body) : text.body) as T;
  }

  get<T = KubeObject>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }
  create(path: string, body: unknown): Promise<KubeObject> {
    return this.call('POST', path, body);
  }
  replace(path: string, body: unknown): Promise<KubeObject> {
    return this.call('PUT', path, body);
  }
  patch(path: string, body: unknown, type: PatchType = 'merge'): Promise<KubeObject> {
    return this.call('PATCH', path, body, PATCH_CONTENT_TYPES[type]);
  }
  delete(path: string, gracePeriodSeconds?: number): Promise<KubeObject> {
    return this.call('DELETE', path, gracePeriodSeconds === undefined ? undefined : { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds });
  }
  /** Deletes, treating "not found" as done. */
  async deleteIfThere(path: string, gracePeriodSeconds?: number): Promise<void> {
    try {
      await this.delete(path, gracePeriodSeconds);
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 404)) throw err;
    }
  }
  /** Creates, or replaces the existing object of that name (its resourceVersion taken from the server). */
  async apply(collection: string, body: KubeObject): Promise<KubeObject> {
    try {
      return await this.create(collection, body);
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 409)) throw err;
      const current = await this.get(`${collection}/${body.metadata.name}`);
      return this.replace(`${collection}/${body.metadata.name}`, { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata.resourceVersion } });
    }
  }

  /** Waits until the API server answers /readyz. */
  async waitReady(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.call('GET', '/readyz', undefined, 'application/json', 2000);
        return;
      } catch (err) {
        if (Date.now() > end) throw new Error(`the API server is not ready after ${timeoutMs} ms: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Watches a collection path from resourceVersion; calls onEvent for each event. Resolves when the
   * watch ends (server timeout, close, abort), rejects on a connection error or a non-2xx answer.
   */
  watch(path: string, resourceVersion: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const sep = path.includes('?') ? '&' : '?';
      const req = request({
        agent: this.agent,
        socketPath: this.socket,
        host: '127.0.0.1',
        method: 'GET',
        path: `${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}&timeoutSeconds=240`,
        headers: { accept: 'application/json' },
        signal,
      }, (res) => {
        if ((res.statusCode ?? 0) !== 200) {
          let data = '';
          res.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => reject(new KubeError(res.statusCode ?? 0, 'WATCH', path, data)));
          return;
        }
        const lines = createInterface({ input: res });
        lines.on('line', (line) => {
          if (line.trim() === '') return;
          onEvent(JSON.parse(line) as WatchEvent);
        });
        lines.on('close', () => resolve());
        lines.on('error', () => undefined); // the response's own error handler below decides
        res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      });
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      req.end();
    });
  }
}
