// The only code that talks to the Kubernetes API server: one list page, or one watch stream, per call.
// Authentication and TLS come from the library's KubeConfig (in-cluster token files are re-read on
// every request); the requests themselves are plain node:http(s) so that a failed request keeps the
// API server's Status (the RBAC message of a 403), a watch stream is parsed line by line with errors
// surfaced instead of dropped, and every request can be aborted by the caller.
import * as http from 'node:http';
import * as https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../../errors';
import { isRecord } from '../../json';

export type Json = Record<string, unknown>;

/** The metav1.Status the API server sends with a failed request or in a watch ERROR event. */
export interface KubeStatus {
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
}

export interface ListPage {
  readonly items: readonly Json[];
  readonly resourceVersion: string;
  /** The token of the next page; empty on the last page. */
  readonly continueToken: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  readonly type: WatchEventType;
  readonly object: Json;
}

/** A request the API server refused, or that never reached it (statusCode null). */
export class ApiRequestError extends AgentError {
  readonly statusCode: number | null;
  readonly status: KubeStatus | null;
  /** The Retry-After the server sent with a 429 or 503, in seconds. */
  readonly retryAfterSeconds: number | null;
  constructor(message: string, statusCode: number | null, status: KubeStatus | null, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super('KUBERNETES_API', message, options);
    this.statusCode = statusCode;
    this.status = status;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? null;
  }

  /** 410 Gone: the resourceVersion we hold is compacted away; only a new list can continue. */
  get expired(): boolean {
    return this.statusCode === 410;
  }
}

export function asStatus(v: unknown): KubeStatus | null {
  if (!isRecord(v)) return null;
  return {
    ...(typeof v['code'] === 'number' ? { code: v['code'] } : {}),
    ...(typeof v['reason'] === 'string' ? { reason: v['reason'] } : {}),
    ...(typeof v['message'] === 'string' ? { message: v['message'] } : {}),
  };
}

/** Refuses to buffer more than this of an error response body (a Status is a few hundred bytes). */
const MAX_ERROR_BODY = 64 * 1024;

export class ApiClient {
  private readonly server: URL;

  constructor(private readonly kubeConfig: KubeConfig) {
    const cluster = kubeConfig.getCurrentCluster();
    if (cluster === null) throw new AgentError('KUBERNETES_API', 'the kubeconfig has no current cluster: set current-context, or pass --kubeconfig');
    this.server = new URL(cluster.server);
  }

  get serverUrl(): string {
    return this.server.origin;
  }

  /** One page of a list, gzip-compressed on the wire when the server offers it (as client-go asks). */
  async listPage(path: string, query: Record<string, string>, signal: AbortSignal): Promise<ListPage & { wireBytes: number }> {
    const res = await this.request(path, query, { 'accept-encoding': 'gzip' }, signal);
    let wireBytes = 0;
    const gzipped = res.headers['content-encoding'] === 'gzip';
    if (gzipped) res.on('data', (c: Buffer) => { wireBytes += c.length; });
    const body = gzipped ? res.pipe(createGunzip()) : res;
    const chunks: Buffer[] = [];
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      if (!gzipped) wireBytes += (chunk as Buffer).length;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ApiRequestError(`list ${path}: the response is not JSON (${text.length} bytes)`, res.statusCode ?? null, null, { cause: err });
    }
    if (!isRecord(parsed) || !Array.isArray(parsed['items'])) throw new ApiRequestError(`list ${path}: the response has no items`, res.statusCode ?? null, null);
    const meta = isRecord(parsed['metadata']) ? parsed['metadata'] : {};
    return {
      items: parsed['items'].filter(isRecord),
      resourceVersion: typeof meta['resourceVersion'] === 'string' ? meta['resourceVersion'] : '',
      continueToken: typeof meta['continue'] === 'string' ? meta['continue'] : '',
      wireBytes,
    };
  }

  /**
   * Streams a watch: `onEvents` gets the events of each chunk as they arrive (several when the server
   * writes several at once), and may throw to end the watch with that error. Resolves when the server
   * ends the stream cleanly; rejects on any other end. `onOpen` is called once the server has accepted
   * the watch (a quiet resource may then send nothing for a minute).
   */
  async watch(path: string, query: Record<string, string>, onEvents: (events: WatchEvent[]) => void, signal: AbortSignal, onOpen?: () => void): Promise<void> {
    const res = await this.request(path, { ...query, watch: 'true' }, {}, signal);
    onOpen?.();
    await new Promise<void>((resolve, reject) => {
      const decoder = new StringDecoder('utf8');
      let pending = '';
      let settled = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        res.destroy();
        reject(err);
      };
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        pending += decoder.write(chunk);
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        const events: WatchEvent[] = [];
        for (const line of lines) {
          if (line.trim() === '') continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch (err) {
            fail(new ApiRequestError(`watch ${path}: a line of the stream is not JSON`, null, null, { cause: err }));
            return;
          }
          const type = isRecord(parsed) ? parsed['type'] : undefined;
          const object = isRecord(parsed) ? parsed['object'] : undefined;
          if (typeof type !== 'string' || !isRecord(object)) {
            fail(new ApiRequestError(`watch ${path}: an event without type or object`, null, null));
            return;
          }
          events.push({ type: type as WatchEventType, object });
        }
        if (events.length === 0) return;
        try {
          onEvents(events);
        } catch (err) {
          fail(err);
        }
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve();
      });
      res.on('error', (err) => fail(new ApiRequestError(`watch ${path}: ${err.message}`, null, null, { cause: err })));
      res.on('close', () => fail(new ApiRequestError(`watch ${path}: the connection closed mid-stream`, null, null)));
    });
  }

  /** Sends a GET and returns the response once it is 200; otherwise throws with the server's Status. */
  private async request(path: string, query: Record<string, string>, headers: Record<string, string>, signal: AbortSignal): Promise<http.IncomingMessage> {
    const url = new URL(this.server.pathname.replace(/\/$/, '') + path, this.server);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const options: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(options);
    const requestHeaders = { ...(options.headers as Record<string, string> | undefined), accept: 'application/json', ...headers };
    const send = url.protocol === 'https:' ? https.request : http.request;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = send(url, { ...options, method: 'GET', headers: requestHeaders, signal }, resolve);
      req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const what = err.code !== undefined ? `${err.code} ${err.message}` : err.message;
        reject(signal.aborted ? err : new ApiRequestError(`cannot reach the API server at ${this.server.origin}: ${what}`, null, null, { cause: err }));
      });
      req.end();
    });
    if (res.statusCode === 200) return res;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res) {
        size += (chunk as Buffer).length;
        if (size > MAX_ERROR_BODY) break;
        chunks.push(chunk as Buffer);
      }
    } catch {
      // The status line is enough to go on when the body is cut.
    }
    res.destroy();
    let status: KubeStatus | null = null;
    try {
      status = asStatus(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch {
      status = null;
    }
    const code = res.statusCode ?? 0;
    const retryAfter = Number(res.headers['retry-after']);
    const text = `${code} ${http.STATUS_CODES[code] ?? ''}${status?.message !== undefined ? `: ${status.message}` : ''}`;
    throw new ApiRequestError(text, code, status, Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {});
  }
}
