// One agent: a cluster source, the event pipeline (pipeline.ts) to the loop that compiles and
// programs, the health registry every component reports its level to, and the two HTTP surfaces
// (health and metrics on TCP, debug on a unix socket), wired together. Stopping it leaves the kernel table in place, so enforcement continues until the next
// start adopts and reconciles it.
import type { Logger } from 'pino';
import type { ClusterSource } from '../api';
import { errorMessage } from '../errors';
import { NodeCompiler } from '../compiler';
import { Dataplane, checkCniShape } from '../dataplane';
import { KernelNftBackend, Transaction } from '../dataplane/nft';
import type { NftBackend } from '../dataplane/nft';
import { FileSource } from '../source';
import { KubernetesSource } from '../source/kubernetes';
import { AgentLoop } from './agent-loop';
import { CniPodGate, CniServer, CommitTracker, ConfWatcher } from '../cni';
import type { AgentLoopOptions } from './agent-loop';
import { AgentServer, parseListen } from './http-server';
import { CNI_COMPONENT, DROP_LOG_COMPONENT, HealthRegistry } from './health';
import { AgentMetrics } from './metrics';
import { Observability } from './observability';
import { eventPipeline } from './pipeline';
import type { DropLogging } from '../dataplane/layout';
import { ClusterIndex } from '../observe/cluster-index';
import { DropLog } from '../observe/drops';
import { startDropReader } from '../observe/drop-reader';
import { AuditRunner } from '../observe/audit';
import { dropContext } from '../observe/drops';
import type { DropReader } from '../observe/drop-reader';

export interface AgentOptions {
  readonly node: string;
  readonly table: string;
  /** "host:port" of the health and metrics endpoint (/healthz, /readyz, /metrics). */
  readonly metricsListen: string;
  /** Unix socket of the debug endpoints (/rules, /explain, /drops), mode 0600; null: not served. */
  readonly debugSocket: string | null;
  /** How long a part of the source may fail before /readyz says not ready (default 10 s). */
  readonly sourceFailureGraceMs?: number;
  /** Manifests to read instead of the Kubernetes API. */
  readonly datastoreFile?: string;
  readonly kubeconfig?: string;
  /** 0: no periodic full reconcile. */
  readonly resyncPeriodMs: number;
  /** A watch silent (no event, no bookmark) this long is restarted; default: the source's (150 s). */
  readonly watchSilenceTimeoutMs?: number;
  readonly logger: Logger;
  /** The nftables backend; default: the kernel, in this process's network namespace. */
  readonly backend?: NftBackend;
  /** Unix socket of netpol-agent-cni; no socket when absent. */
  readonly cniSocket?: string;
  /** The host's CNI configuration directory: the plugin's entry is chained again when the main CNI drops it. */
  readonly cniConfDir?: string;
  /** Denied new connections logged through nflog (group, kernel rate limit); null: not logged. */
  readonly dropLog?: DropLogging | null;
  /** Identical drops within this window are one log line. */
  readonly dropWindowMs?: number;
  /** Audit only: every policy is evaluated and logged, none enforced. */
  readonly audit?: boolean;
  /** The nftables backend of the audit table (default: the kernel, table `<table>_audit`). */
  readonly auditBackend?: NftBackend;
  /** Observes each committed transaction (benchmarks). */
  readonly onCommitted?: AgentLoopOptions['onCommitted'];
}

export interface RunningAgent {
  readonly loop: AgentLoop;
  readonly metrics: AgentMetrics;
  /** Every component's level: what /readyz and netpol_agent_component_ready show. */
  readonly health: HealthRegistry;
  /** Where the health and metrics endpoint listens. */
  readonly address: { host: string; port: number };
  /** Stops watching and serving; the kernel table stays. */
  stop(): Promise<void>;
}

/** The table of the policies in audit. */
export function auditTableName(table: string): string {
  return `${table}_audit`;
}

/** Drop logging is observability: its failure is shown, and does not hold back readiness. */
const DROP_LOG_HEALTH = { graceMs: 0, readiness: false };

/** Default drop logging: nflog group 7745, at most 20 records per second and group chain, bursts of 40. */
export const DEFAULT_DROP_LOGGING: DropLogging = { group: 7745, rate: 20, burst: 40 };

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.logger;
  const listen = parseListen(options.metricsListen);
  const metrics = new AgentMetrics();
  const health = new HealthRegistry(metrics.registry);
  const backend = options.backend ?? new KernelNftBackend({ table: options.table });
  const shape = checkCniShape();
  if (shape.problem !== null) log.warn({ shape: shape.shape }, shape.problem);
  const logging = options.dropLog === undefined ? DEFAULT_DROP_LOGGING : options.dropLog;
  const dataplane = new Dataplane(backend, logging === null ? {} : { logging });
  const index = new ClusterIndex();
  const auditAll = options.audit === true;
  let audit: { readonly loop: AgentLoop; readonly dataplane: Dataplane; readonly backend: NftBackend } | null = null;
  const auditRunner = new AuditRunner(index, auditAll, () => {
    const auditBackend = options.auditBackend ?? new KernelNftBackend({ table: auditTableName(options.table) });
    const auditDataplane = new Dataplane(auditBackend, { audit: true, ...(logging === null ? {} : { logging }) });
    const auditLoop = new AgentLoop({ compiler: new NodeCompiler(options.node), dataplane: auditDataplane, metrics: new AgentMetrics({ processMetrics: false }), logger: log.child({ table: auditBackend.table }), resyncPeriodMs: options.resyncPeriodMs });
    audit = { loop: auditLoop, dataplane: auditDataplane, backend: auditBackend };
    log.info({ table: auditBackend.table }, 'policies in audit: evaluating them in a table of their own that logs and drops nothing');
    return auditLoop;
  });
  let drops: DropLog | undefined;
  let reader: DropReader | null = null;
  if (logging !== null) {
    drops = new DropLog({ logger: log, registry: metrics.registry, ...(options.dropWindowMs === undefined ? {} : { windowMs: options.dropWindowMs }) });
    try {
      reader = startDropReader({
        group: logging.group,
        log: drops,
        context: dropContext(dataplane, index),
        audit: () => (audit === null ? null : dropContext(audit.dataplane, index)),
      });
    } catch (err) {
      const reason = `denied connections are not logged: reading nflog group ${logging.group} failed (${errorMessage(err)}); choose another with --drop-log-group`;
      health.report(DROP_LOG_COMPONENT, DROP_LOG_HEALTH, false, reason);
      log.warn({ err, group: logging.group }, reason);
    }
    if (reader !== null) health.report(DROP_LOG_COMPONENT, DROP_LOG_HEALTH, true, `reading nflog group ${logging.group}`);
  }
  const observability = new Observability({ dataplane, metrics, cluster: index, audit: () => auditRunner.policies(), ...(drops === undefined ? {} : { drops }) });
  const committed = options.cniSocket !== undefined ? new CommitTracker(dataplane) : null;
  const loop = new AgentLoop({
    compiler: new NodeCompiler(options.node),
    dataplane: committed ?? dataplane,
    metrics,
    logger: log,
    resyncPeriodMs: options.resyncPeriodMs,
    health,
    ...(options.sourceFailureGraceMs !== undefined ? { sourceFailureGraceMs: options.sourceFailureGraceMs } : {}),
    ...(options.onCommitted !== undefined ? { onCommitted: options.onCommitted } : {}),
  });
  const servers: AgentServer[] = [];
  const closeServers = async (): Promise<void> => {
    for (const s of servers.splice(0)) await s.close();
  };
  const metricsServer = new AgentServer({ surface: 'metrics', health, metrics, errors: metrics, logger: log });
  let bound;
  try {
    bound = await metricsServer.listen(listen.host, listen.port);
    servers.push(metricsServer);
    if (options.debugSocket !== null) {
      const debugServer = new AgentServer({ surface: 'debug', rules: loop, observability, errors: metrics, logger: log });
      await debugServer.listenSocket(options.debugSocket);
      servers.push(debugServer);
    }
  } catch (err) {
    await closeServers();
    backend.close();
    throw err;
  }
  // With the CNI socket, the source delivers to the gate, which folds the plugin's addresses into pods.
  let gate: CniPodGate | null = null;
  let cni: CniServer | null = null;
  if (options.cniSocket !== undefined && committed !== null) {
    gate = new CniPodGate({ node: options.node, sink: loop, committed, logger: log });
    // STATUS asks whether a new pod can be programmed, not whether the API server answers.
    cni = new CniServer({ path: options.cniSocket, gate, ready: () => loop.canProgram(), registry: metrics.registry, logger: log });
    try {
      await cni.listen();
    } catch (err) {
      await closeServers();
      backend.close();
      throw err;
    }
    health.report(CNI_COMPONENT, { graceMs: 0, readiness: true }, true, `listening on ${options.cniSocket}`);
    log.info({ cniSocket: options.cniSocket }, 'CNI socket listening: pods held at sandbox start until their rules are committed');
  }
  const confWatcher = options.cniConfDir !== undefined ? new ConfWatcher({ confDir: options.cniConfDir, logger: log }) : null;
  confWatcher?.start();
  const source: ClusterSource = options.datastoreFile !== undefined
    ? new FileSource({ path: options.datastoreFile })
    : new KubernetesSource({
      ...(options.kubeconfig !== undefined ? { kubeconfigPath: options.kubeconfig } : {}),
      ...(options.watchSilenceTimeoutMs !== undefined ? { silenceTimeoutMs: options.watchSilenceTimeoutMs } : {}),
      metrics,
      logger: log,
    });
  log.info({ table: options.table, metricsListen: `${bound.address}:${bound.port}`, debugSocket: options.debugSocket, source: options.datastoreFile ?? (options.kubeconfig ?? 'in-cluster') }, 'agent starting: the kernel table stays as found until the source is synced');
  source.start(eventPipeline({ index, auditAll, audit: auditRunner, enforcing: gate ?? loop }));
  return {
    loop,
    metrics,
    health,
    address: { host: bound.address, port: bound.port },
    async stop(): Promise<void> {
      await source.stop();
      confWatcher?.close();
      await cni?.close();
      await closeServers();
      await loop.stop();
      const a = audit as { readonly loop: AgentLoop; readonly backend: NftBackend } | null;
      await a?.loop.stop();
      a?.backend.close();
      reader?.close();
      drops?.close();
      backend.close();
      log.info({ table: options.table }, 'agent stopped; the kernel table stays in place and keeps enforcing');
    },
  };
}

/** Uninstall: deletes the agent's table (and with it every rule it programmed). Returns whether it existed. */
export async function removeTable(table: string, backend: NftBackend = new KernelNftBackend({ table })): Promise<boolean> {
  try {
    if ((await backend.list()) === null) return false;
    const tx = new Transaction(table);
    tx.delete({ kind: 'table' });
    await backend.run(tx);
    return true;
  } finally {
    backend.close();
  }
}
