// The agent's own HTTP endpoint (node:http, loopback by default): /rules, /healthz, /readyz, /metrics.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import type { AgentMetrics } from './metrics';
import { buildRulesReport, renderRulesReport } from './rules-report';
import type { RulesQuery, RulesSource } from './rules-report';
import type { Observability } from './observability';

export interface AgentServerOptions {
  readonly rules: RulesSource & { ready(): boolean; sourceFailing(): boolean };
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** Kernel counters in /rules, and the endpoints it serves (/drops, /explain). */
  readonly observability?: Observability;
}

/** "host:port"; a bare port means loopback. IPv6 hosts in brackets ("[::1]:9977"). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--listen ${JSON.stringify(text)}: use host:port, e.g. 127.0.0.1:9977`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function wantsText(req: IncomingMessage, url: URL): boolean {
  const format = url.searchParams.get('format');
  if (format !== null) return format === 'text';
  return (req.headers.accept ?? '').split(',').some((t) => t.trim().startsWith('text/plain'));
}

export class AgentServer {
  private readonly server: Server;

  constructor(private readonly options: AgentServerOptions) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.metrics.error('http');
        options.logger.error({ err, url: req.url }, `HTTP ${req.url ?? ''} failed: ${errorMessage(err)}`);
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${errorMessage(err)}\n`);
        else res.end();
      });
    });
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'only GET\n');
    const { rules, metrics } = this.options;
    switch (url.pathname) {
      case '/healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      case '/readyz': {
        const s = rules.status();
        if (rules.ready()) return send(res, 200, 'text/plain; charset=utf-8', 'ready\n');
        // Before the first listing, the last error is why it is late (an unreachable API server, RBAC).
        const why = !s.synced
          ? `waiting for the first complete listing of the cluster${s.lastError !== null ? `; last error: ${s.lastError.message}` : ''}`
          : s.sourceProblem !== null && rules.sourceFailing()
            ? `the cluster source fails since ${s.sourceProblem.since}: ${s.sourceProblem.message}`
            : s.lastError !== null ? `last transaction failed: ${s.lastError.message}` : 'first reconcile of the kernel table in progress';
        return send(res, 503, 'text/plain; charset=utf-8', `not ready: ${why}\n`);
      }
      case '/metrics':
        return send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
      case '/rules': {
        const query: RulesQuery = {
          ...(url.searchParams.has('pod') ? { pod: url.searchParams.get('pod') ?? '' } : {}),
          ...(url.searchParams.has('policy') ? { policy: url.searchParams.get('policy') ?? '' } : {}),
          verbose: ['1', 'true'].includes(url.searchParams.get('verbose') ?? ''),
        };
        const asText = wantsText(req, url);
        const reply = this.options.observability === undefined ? { status: 200, ...renderRulesReport(buildRulesReport(rules, query), asText) } : await this.options.observability.rules(rules, query, asText);
        return send(res, reply.status, reply.type, reply.body);
      }
      default:
        if (this.options.observability !== undefined && (await this.options.observability.handle(url, res, send))) return;
        return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /rules, /drops, /explain, /healthz, /readyz, /metrics\n');
    }
  }
}
