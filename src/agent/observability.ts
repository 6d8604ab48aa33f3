// The agent's observability endpoints beyond /rules: the kernel counters added to /rules and
// /metrics, and /drops (recent denied connections). Kept apart from http-server.ts, which hands it
// what it does not serve itself.
import type { ServerResponse } from 'node:http';
import { Counter } from 'prom-client';
import type { Dataplane, GroupCounterReport } from '../dataplane';
import { countersByNamespace, directionCounters } from '../observe/counters';
import type { AgentMetrics } from './metrics';
import { buildRulesReport, renderRulesReport } from './rules-report';
import type { DirectionReport, RulesQuery, RulesReport, RulesSource } from './rules-report';
import type { DropLog } from '../observe/drops';
import { ExplainError, explainConnection, formatExplanation } from '../observe/explain';
import type { ExplainCluster } from '../observe/explain';
import { PROTOCOLS } from '../api';
import type { PolicyState, Protocol } from '../api';

export interface ObservabilityOptions {
  readonly dataplane: Pick<Dataplane, 'counters'>;
  readonly metrics: AgentMetrics;
  /**
   * How long one listing of the counters (and a /rules report rendered with it) is served after the
   * listing ended; default 1 s. A listing reads the whole table and holds libnftables for its length.
   */
  readonly countersMaxAgeMs?: number;
  /** The clock (milliseconds) that ages listings and rendered reports; default performance.now (tests inject one). */
  readonly now?: () => number;
  /** Denied connections read from the kernel; /drops says it is off when absent. */
  readonly drops?: DropLog;
  /** Policies in audit (evaluated and logged, not enforced), for /rules. */
  readonly audit?: () => readonly string[];
  /** The cluster as the agent heard it, for /explain. */
  readonly cluster?: ExplainCluster;
  /** The most NetworkPolicies /explain reads in one namespace (default 1,000); a namespace with more is refused. */
  readonly explainMaxPolicies?: number;
}

export interface EndpointReply {
  readonly status: number;
  readonly type: string;
  /** A Buffer when one reply is sent to many clients: each response writes it without a copy of its own. */
  readonly body: string | Buffer;
}

/** One listing of the group chains' counters. */
export interface CounterListing {
  /** When the listing ended, on the Observability's clock. */
  readonly at: number;
  readonly groups: ReadonlyMap<string, GroupCounterReport>;
}

/** Rendered /rules reports kept at once (one per query and format; queries for one pod are not kept). */
const MAX_RENDERED_REPORTS = 8;

const DEFAULT_COUNTERS_MAX_AGE_MS = 1_000;
const DEFAULT_EXPLAIN_MAX_POLICIES = 1_000;

/**
 * The cluster as /explain reads it. /explain answers for pods on any node, reading the policies of the
 * namespaces of both ends (indexed lookups otherwise); a namespace with more than `max` policies is
 * refused, so that one request's cost stays bounded whatever the cluster holds.
 */
function boundedCluster(cluster: ExplainCluster, max: number): ExplainCluster {
  return {
    pod: (key) => cluster.pod(key),
    podOf: (ip) => cluster.podOf(ip),
    namespaceLabels: (name) => cluster.namespaceLabels(name),
    policiesIn: (namespace) => {
      const policies: PolicyState[] = [];
      for (const p of cluster.policiesIn(namespace)) {
        if (policies.length === max) {
          throw new ExplainError(`namespace ${namespace} has more than ${max} NetworkPolicies, more than /explain reads for one answer: run \`netpol-agent probe --explain\` on its manifests instead`);
        }
        policies.push(p);
      }
      return policies;
    },
  };
}

export class Observability {
  /** The listing in flight: every request that arrives meanwhile shares it. */
  #listing: Promise<CounterListing> | null = null;
  #lastListing: CounterListing | null = null;
  /** Rendered whole-table reports by query and format, with the time they were rendered at. */
  readonly #rendered = new Map<string, { readonly at: number; readonly reply: Promise<EndpointReply> }>();
  readonly #now: () => number;
  readonly #maxAgeMs: number;

  constructor(private readonly options: ObservabilityOptions) {
    this.#now = options.now ?? (() => performance.now());
    this.#maxAgeMs = options.countersMaxAgeMs ?? DEFAULT_COUNTERS_MAX_AGE_MS;
    const read = async (): Promise<GroupCounterReport[]> => [...(await this.counters()).groups.values()];
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
   * The group chains' counters, for /rules and /metrics: at most one listing at a time, shared by every
   * request that arrives while it runs, then served for countersMaxAgeMs after it ended. So however many
   * clients read, the kernel is listed at most once per that period plus one listing's length, and the
   * dataplane's commits (which go before a listing waiting for its turn) wait for at most one listing.
   * A failed listing is not kept: the next request lists again.
   */
  counters(): Promise<CounterListing> {
    if (this.#listing !== null) return this.#listing;
    const last = this.#lastListing;
    if (last !== null && this.#now() - last.at <= this.#maxAgeMs) return Promise.resolve(last);
    const listing = this.options.dataplane.counters().then(
      (groups) => {
        this.#listing = null;
        this.#lastListing = { at: this.#now(), groups: new Map(groups.map((g) => [g.chain, g])) };
        return this.#lastListing;
      },
      (err: unknown) => {
        this.#listing = null;
        throw err;
      },
    );
    this.#listing = listing;
    return listing;
  }

  /**
   * GET /rules: the report with each isolated pod's counters. A query for one pod builds that pod's
   * report only. A whole-table report is rendered once per query and format and served to every
   * request for countersMaxAgeMs, commits or not (its `sync.generation` says which table it shows):
   * rendering reads the whole table on the event loop, and rendering again after every commit would
   * put that work between each change and the next.
   */
  rules(source: RulesSource, query: RulesQuery, asText: boolean): Promise<EndpointReply> {
    if (query.pod !== undefined) return this.#renderRules(source, query, asText);
    const key = JSON.stringify([query.policy ?? null, query.verbose === true, asText]);
    const now = this.#now();
    const kept = this.#rendered.get(key);
    if (kept !== undefined && now - kept.at <= this.#maxAgeMs) return kept.reply;
    const reply = this.#renderRules(source, query, asText);
    this.#rendered.delete(key);
    this.#rendered.set(key, { at: now, reply });
    if (this.#rendered.size > MAX_RENDERED_REPORTS) this.#rendered.delete(this.#rendered.keys().next().value as string);
    reply.catch(() => {
      if (this.#rendered.get(key)?.reply === reply) this.#rendered.delete(key);
    });
    return reply;
  }

  async #renderRules(source: RulesSource, query: RulesQuery, asText: boolean): Promise<EndpointReply> {
    const report = await this.decorateRules(buildRulesReport(source, query));
    const { type, body } = renderRulesReport(report, asText);
    return { status: 200, type, body: query.pod === undefined ? Buffer.from(body) : body };
  }

  /**
   * GET /explain?from=&to=&port=&protocol=: explain's answer on the cluster as the agent heard it,
   * read from the policies as written in the agent's cluster index: a few lookups, no compile.
   */
  private explain(url: URL, res: ServerResponse, send: (res: ServerResponse, status: number, type: string, body: string | Buffer) => void): void {
    const text = (status: number, body: string): void => send(res, status, 'text/plain; charset=utf-8', body);
    if (this.options.cluster === undefined) return text(404, 'explain is not available in this agent\n');
    const cluster = boundedCluster(this.options.cluster, this.options.explainMaxPolicies ?? DEFAULT_EXPLAIN_MAX_POLICIES);
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
    const { groups } = await this.counters();
    const counted = (d: DirectionReport): DirectionReport => {
      const group = d.nftables === null ? undefined : groups.get(d.nftables.chain);
      return group === undefined ? d : { ...d, counters: directionCounters(group) };
    };
    return {
      ...report,
      ...(this.options.audit === undefined ? {} : { audit: this.options.audit() }),
      pods: report.pods.map((p) => ({ ...p, ingress: counted(p.ingress), egress: counted(p.egress) })),
    };
  }

  /** Serves the paths this module owns; false when `url` is not one of them. */
  async handle(url: URL, res: ServerResponse, send: (res: ServerResponse, status: number, type: string, body: string | Buffer) => void): Promise<boolean> {
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
