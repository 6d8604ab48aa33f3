// The agent's observability endpoints beyond /rules: the kernel counters added to /rules and
// /metrics, and /drops (recent denied connections). Kept apart from http-server.ts, which hands it
// what it does not serve itself.
import type { ServerResponse } from 'node:http';
import { Counter } from 'prom-client';
import type { Dataplane, GroupCounterReport } from '../dataplane';
import { countersByNamespace, countersByPod } from '../observe/counters';
import type { AgentMetrics } from './metrics';
import type { RulesReport } from './rules-report';
import type { DropLog } from '../observe/drops';
import { ExplainError, explainConnection, formatExplanation } from '../observe/explain';
import type { ExplainCluster } from '../observe/explain';
import { PROTOCOLS } from '../api';
import type { Protocol } from '../api';

export interface ObservabilityOptions {
  readonly dataplane: Pick<Dataplane, 'counters'>;
  readonly metrics: AgentMetrics;
  /** How long one listing of the counters serves /rules and /metrics (a listing reads the whole table). */
  readonly countersMaxAgeMs?: number;
  /** Denied connections read from the kernel; /drops says it is off when absent. */
  readonly drops?: DropLog;
  /** Policies in audit (evaluated and logged, not enforced), for /rules. */
  readonly audit?: () => readonly string[];
  /** The cluster as the agent heard it, for /explain. */
  readonly cluster?: ExplainCluster;
}

export interface EndpointReply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

export class Observability {
  /** The last listing; `pending` while it runs (a fresh request joins a listing in flight). */
  #counters: { at: number; groups: Promise<GroupCounterReport[]>; pending: boolean } | null = null;

  constructor(private readonly options: ObservabilityOptions) {
    const read = (): Promise<GroupCounterReport[]> => this.counters();
    const labelNames = ['namespace', 'direction', 'verdict'] as const;
    new Counter({
      name: 'netpol_agent_policy_packets_total',
      help: 'Packets of new connections the group chains allowed or dropped, by namespace of the isolated pods and direction (kernel counters; a chain written again starts at 0)',
      labelNames,
      registers: [options.metrics.registry],
      async collect() {
        this.reset();
        for (const t of countersByNamespace(await read()).values()) {
          this.inc({ namespace: t.namespace, direction: t.direction, verdict: 'allowed' }, t.allowed.packets);
          this.inc({ namespace: t.namespace, direction: t.direction, verdict: 'dropped' }, t.dropped.packets);
        }
      },
    });
    new Counter({
      name: 'netpol_agent_policy_bytes_total',
      help: 'Bytes of the packets counted by netpol_agent_policy_packets_total, with the same labels',
      labelNames,
      registers: [options.metrics.registry],
      async collect() {
        this.reset();
        for (const t of countersByNamespace(await read()).values()) {
          this.inc({ namespace: t.namespace, direction: t.direction, verdict: 'allowed' }, t.allowed.bytes);
          this.inc({ namespace: t.namespace, direction: t.direction, verdict: 'dropped' }, t.dropped.bytes);
        }
      },
    });
  }

  /**
   * The group chains' counters: /metrics takes a listing up to countersMaxAgeMs old (scrapes never
   * list more often than that), /rules a fresh one (maxAgeMs 0).
   */
  counters(maxAgeMs = this.options.countersMaxAgeMs ?? 2_000): Promise<GroupCounterReport[]> {
    const maxAge = maxAgeMs;
    const now = performance.now();
    if (this.#counters === null || now - this.#counters.at > maxAge || (maxAge === 0 && !this.#counters.pending)) {
      const groups = this.options.dataplane.counters();
      const entry = { at: now, groups, pending: true };
      this.#counters = entry;
      groups.then(
        () => {
          entry.pending = false;
        },
        () => {
          if (this.#counters === entry) this.#counters = null;
        },
      );
    }
    return this.#counters.groups;
  }

  /**
   * GET /explain?from=&to=&port=&protocol=: explain's answer on the cluster as the agent heard it,
   * read from the policies as written in the agent's cluster index: a few lookups, no compile.
   */
  private explain(url: URL, res: ServerResponse, send: (res: ServerResponse, status: number, type: string, body: string) => void): void {
    const cluster = this.options.cluster;
    const text = (status: number, body: string): void => send(res, status, 'text/plain; charset=utf-8', body);
    if (cluster === undefined) return text(404, 'explain is not available in this agent\n');
    const from = url.searchParams.get('from');
    const to = url.searchParams.get('to');
    const port = Number(url.searchParams.get('port'));
    const protocol = (url.searchParams.get('protocol') ?? 'TCP').toUpperCase();
    if (from === null || to === null || !Number.isInteger(port) || port < 1 || port > 65535 || !(PROTOCOLS as readonly string[]).includes(protocol)) {
      return text(400, 'usage: /explain?from=NS/POD|IP&to=NS/POD|IP&port=N&protocol=TCP|UDP|SCTP\n');
    }
    try {
      const e = explainConnection(cluster, { from, to, port, protocol: protocol as Protocol });
      if (url.searchParams.get('format') === 'text') return text(200, formatExplanation(e));
      return send(res, 200, 'application/json', `${JSON.stringify(e, null, 2)}\n`);
    } catch (err) {
      if (err instanceof ExplainError) return text(400, `${err.message}\n`);
      throw err;
    }
  }

  /** The report with each isolated pod's counters (those of its group chain) and the policies in audit. */
  async decorateRules(report: RulesReport): Promise<RulesReport> {
    const byPod = countersByPod(await this.counters(0));
    return {
      ...report,
      ...(this.options.audit === undefined ? {} : { audit: this.options.audit() }),
      pods: report.pods.map((p) => {
        const c = byPod.get(p.pod);
        if (c === undefined) return p;
        return {
          ...p,
          ingress: c.ingress === undefined ? p.ingress : { ...p.ingress, counters: c.ingress },
          egress: c.egress === undefined ? p.egress : { ...p.egress, counters: c.egress },
        };
      }),
    };
  }

  /** Serves the paths this module owns; false when `url` is not one of them. */
  async handle(url: URL, res: ServerResponse, send: (res: ServerResponse, status: number, type: string, body: string) => void): Promise<boolean> {
    if (url.pathname === '/explain') {
      this.explain(url, res, send);
      return true;
    }
    if (url.pathname !== '/drops') return false;
    const drops = this.options.drops;
    if (drops === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', 'drop logging is off (netpol-agent run --no-drop-log)\n');
      return true;
    }
    const pod = url.searchParams.get('pod');
    const limit = Number(url.searchParams.get('limit') ?? '');
    const recent = drops.recent({ ...(pod === null ? {} : { pod }), ...(Number.isInteger(limit) && limit > 0 ? { limit } : {}) });
    send(res, 200, 'application/json', `${JSON.stringify({ drops: recent }, null, 2)}\n`);
    return true;
  }
}
