// The agent's two HTTP surfaces (node:http):
// - health and metrics (/healthz, /readyz, /metrics) on TCP (--metrics-listen): what the kubelet
//   probes and Prometheus scrapes, safe to bind on the node address; nothing about pods or policies.
// - debug (/rules, /explain, /drops) on a unix socket of mode 0600 (--debug-socket): what the
//   cluster's pods and policies look like from this node, for `netpol-agent rules` and `kubectl exec`.
// Both bound the cost a client can impose: header, request and idle timeouts, and a connection cap.
import { unlinkSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import type { HealthRegistry } from './health';
import type { AgentMetrics } from './metrics';
import { buildRulesReport, renderRulesReport } from './rules-report';
import type { RulesQuery, RulesSource } from './rules-report';
import type { Observability } from './observability';
import { listenPrivateSocket } from '../net/unix-socket';

/** The default of --metrics-listen: loopback; a DaemonSet binds the node address to be scraped. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9977';
/** The default of --debug-socket. */
export const DEFAULT_DEBUG_SOCKET = '/run/netpol-agent/debug.sock';

/** The paths the debug socket serves (the metrics address serves /healthz, /readyz, /metrics). */
export const DEBUG_PATHS: readonly string[] = ['/rules', '/explain', '/drops'];

/** What a client may cost: a slow or idle client is cut off, and connections beyond the cap refused. */
export interface ServerLimits {
  /** Until the request headers are in (slowloris). */
  readonly headersTimeoutMs: number;
  /** Until the whole request is in. */
  readonly requestTimeoutMs: number;
  /** A kept-alive connection with no request for this long is closed. */
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
}

/**
 * Probes and scrapes come every few seconds from one or two clients; a debug client is a person. The
 * caps leave room for those and keep a flood of connections (each with its buffers) from the heap.
 */
export const METRICS_LIMITS: ServerLimits = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, idleTimeoutMs: 5_000, maxConnections: 64 };
export const DEBUG_LIMITS: ServerLimits = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, idleTimeoutMs: 5_000, maxConnections: 16 };

export interface MetricsServerRoutes {
  readonly surface: 'metrics';
  readonly health: HealthRegistry;
  readonly metrics: AgentMetrics;
}

export interface DebugServerRoutes {
  readonly surface: 'debug';
  readonly rules: RulesSource;
  /** Kernel counters in /rules, and the endpoints it serves (/drops, /explain). */
  readonly observability?: Observability;
}

export type AgentServerOptions = (MetricsServerRoutes | DebugServerRoutes) & {
  /** Counts failed requests (errors_total{stage="http"}). */
  readonly errors: Pick<AgentMetrics, 'error'>;
  readonly logger: Logger;
  readonly limits?: ServerLimits;
};

/** "host:port"; a bare port means loopback. IPv6 hosts in brackets ("[::1]:9977"). */
export function parseListen(text: string, flag = '--metrics-listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${flag} ${JSON.stringify(text)}: use host:port, e.g. ${DEFAULT_METRICS_LISTEN}`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const TEXT = 'text/plain; charset=utf-8';

function wantsText(req: IncomingMessage, url: URL): boolean {
  const format = url.searchParams.get('format');
  if (format !== null) return format === 'text';
  return (req.headers.accept ?? '').split(',').some((t) => t.trim().startsWith('text/plain'));
}

/** A GET over a unix socket (fetch has none): what `netpol-agent rules` and the tests read the debug socket with. */
export function getOverSocket(socketPath: string, path: string, timeoutMs: number, accept = '*/*'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs, headers: { accept } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export class AgentServer {
  private readonly server: Server;
  private socketPath: string | null = null;

  constructor(private readonly options: AgentServerOptions) {
    const limits = options.limits ?? (options.surface === 'metrics' ? METRICS_LIMITS : DEBUG_LIMITS);
    this.server = createServer({ headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, keepAliveTimeout: limits.idleTimeoutMs, connectionsCheckingInterval: 1_000 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.errors.error('http');
        options.logger.error({ err, url: req.url }, `HTTP ${req.url ?? ''} failed: ${errorMessage(err)}`);
        if (!res.headersSent) send(res, 500, TEXT, `internal error: ${errorMessage(err)}\n`);
        else res.end();
      });
    });
    this.server.maxConnections = limits.maxConnections;
    // A connection that sends nothing at all is not covered by the header timeout until its first byte.
    this.server.setTimeout(limits.requestTimeoutMs, (socket) => socket.destroy());
  }

  /** Listens on TCP; resolves with the bound address (port 0 picks a free one). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Listens on a unix socket of mode 0600 (its directory created 0700, a stale socket replaced). */
  async listenSocket(path: string): Promise<void> {
    await listenPrivateSocket(this.server, path);
    this.socketPath = path;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => {
        if (this.socketPath !== null) {
          try {
            unlinkSync(this.socketPath);
          } catch {
            // already gone: nothing to clean
          }
        }
        resolve();
      });
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, TEXT, 'only GET\n');
    const o = this.options;
    return o.surface === 'metrics' ? this.metricsRoute(o, url, res) : this.debugRoute(o, req, url, res);
  }

  private async metricsRoute(o: MetricsServerRoutes, url: URL, res: ServerResponse): Promise<void> {
    switch (url.pathname) {
      case '/healthz':
        // The process serves: what a restart could fix. Every failure the components report is one a
        // restart does not fix (the API server, RBAC, the datastore): they are readiness's business.
        return send(res, 200, TEXT, 'ok\n');
      case '/readyz':
        return send(res, o.health.ready() ? 200 : 503, TEXT, o.health.readyzText());
      case '/metrics':
        return send(res, 200, o.metrics.registry.contentType, await o.metrics.registry.metrics());
      default:
        return send(res, 404, TEXT, 'not found: this address serves /healthz, /readyz and /metrics; /rules, /explain and /drops are on the debug socket (netpol-agent rules)\n');
    }
  }

  private async debugRoute(o: DebugServerRoutes, req: IncomingMessage, url: URL, res: ServerResponse): Promise<void> {
    if (url.pathname === '/rules') {
      const query: RulesQuery = {
        ...(url.searchParams.has('pod') ? { pod: url.searchParams.get('pod') ?? '' } : {}),
        ...(url.searchParams.has('policy') ? { policy: url.searchParams.get('policy') ?? '' } : {}),
        verbose: ['1', 'true'].includes(url.searchParams.get('verbose') ?? ''),
      };
      const asText = wantsText(req, url);
      const reply = o.observability === undefined ? { status: 200, ...renderRulesReport(buildRulesReport(o.rules, query), asText) } : await o.observability.rules(o.rules, query, asText);
      return send(res, reply.status, reply.type, reply.body);
    }
    if (o.observability !== undefined && (await o.observability.handle(url, res, send))) return;
    return send(res, 404, TEXT, 'not found: this socket serves /rules, /drops and /explain; /healthz, /readyz and /metrics are on --metrics-listen\n');
  }
}
