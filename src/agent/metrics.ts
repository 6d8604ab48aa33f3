// The agent's Prometheus metrics, in a registry of its own (nothing global, so tests and benchmarks can
// run several agents in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ObjectKind } from '../api';

/** Latency buckets in seconds: the target is 20 ms at p99, a full sync at 100,000 pods takes seconds. */
const LATENCY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What an event is, for the latency histogram: local pods are the ones whose start waits on us. */
export type EventClass = ObjectKind | 'LocalPod';

export type ErrorStage = 'source' | 'dataplane' | 'rejected' | 'http';

/**
 * The agent's metrics. Its watchRestarted/relisted/objects methods are what a cluster source counts
 * (the Kubernetes source's SourceMetrics): the source receives this object.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly programmingLatency = new Histogram({
    name: 'netpol_agent_programming_latency_seconds',
    help: 'From an event received from the source to the kernel transaction that carries it committed',
    labelNames: ['kind'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly syncDuration = new Histogram({
    name: 'netpol_agent_sync_duration_seconds',
    help: 'Duration of one dataplane transaction (full reconcile or incremental update)',
    labelNames: ['type'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly transactions = new Counter({
    name: 'netpol_agent_transactions_total',
    help: 'Dataplane transactions, by type and result',
    labelNames: ['type', 'result'],
    registers: [this.registry],
  });
  readonly operations = new Counter({
    name: 'netpol_agent_nft_operations_total',
    help: 'nftables operations (objects and elements written or deleted) in committed transactions',
    registers: [this.registry],
  });
  readonly watchRestarts = new Counter({
    name: 'netpol_agent_watch_restarts_total',
    help: 'Watches of the cluster source that ended and were started again',
    labelNames: ['resource', 'reason'],
    registers: [this.registry],
  });
  readonly relists = new Counter({
    name: 'netpol_agent_relists_total',
    help: 'Full relists of a resource by the cluster source',
    labelNames: ['resource'],
    registers: [this.registry],
  });
  readonly objectCount = new Gauge({
    name: 'netpol_agent_objects',
    help: 'Objects known to the agent, by kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly sourceObjects = new Gauge({
    name: 'netpol_agent_source_objects',
    help: 'Objects the cluster source tracks, by kind (valid and rejected)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly notEnforceable = new Gauge({
    name: 'netpol_agent_policies_not_enforceable',
    help: 'NetworkPolicies that fail validation and are enforced fail-closed (isolation without allow rules)',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'netpol_agent_errors_total',
    help: 'Errors, by stage: source (watch, file), dataplane (failed transaction or compile), rejected (invalid object), http (a request of the endpoint)',
    labelNames: ['stage'],
    registers: [this.registry],
  });
  readonly pendingEvents = new Gauge({
    name: 'netpol_agent_pending_events',
    help: 'Events received and not yet committed to the kernel',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'netpol_agent_' });
  }

  watchRestarted(resource: string, reason: string): void {
    this.watchRestarts.inc({ resource, reason });
  }

  relisted(resource: string): void {
    this.relists.inc({ resource });
  }

  objects(kind: string, count: number): void {
    this.sourceObjects.set({ kind }, count);
  }

  error(stage: ErrorStage): void {
    this.errors.inc({ stage });
  }
}
