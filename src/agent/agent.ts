// One agent: a cluster source, the loop that compiles and programs, and the HTTP endpoint, wired
// together. Stopping it leaves the kernel table in place, so enforcement continues until the next
// start adopts and reconciles it.
import type { Logger } from 'pino';
import type { ClusterSource, SourceSink } from '../api';
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
import { AgentMetrics } from './metrics';
import { Observability } from './observability';
import type { DropLogging } from '../dataplane/layout';
import { ClusterIndex, teeSink } from '../observe/cluster-index';
import { DropLog } from '../observe/drops';
import { startDropReader } from '../observe/drop-reader';
import { AuditRunner, enforcedOnly, fanOut } from '../observe/audit';
import { dropContext } from '../observe/drops';
import type { DropReader } from '../observe/drop-reader';

export interface AgentOptions {
  readonly node: string;
  readonly table: string;
  /** "host:port" of the HTTP endpoint. */
  readonly listen: string;
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
  /** Where the HTTP endpoint listens. */
  readonly address: { host: string; port: number };
  /** Stops watching and serving; the kernel table stays. */
  stop(): Promise<void>;
}

/** The table of the policies in audit. */
export function auditTableName(table: string): string {
  return `${table}_audit`;
}

/** Default drop logging: nflog group 7745, at most 20 records per second and group chain, bursts of 40. */
export const DEFAULT_DROP_LOGGING: DropLogging = { group: 7745, rate: 20, burst: 40 };

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.logger;
  const listen = parseListen(options.listen);
  const metrics = new AgentMetrics();
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
      log.warn({ err, group: logging.group }, `denied connections are not logged: reading nflog group ${logging.group} failed (${errorMessage(err)}); choose another with --drop-log-group`);
    }
  }
  const observability = new Observability({ dataplane, metrics, cluster: index, audit: () => auditRunner.policies(), ...(drops === undefined ? {} : { drops }) });
  const committed = options.cniSocket !== undefined ? new CommitTracker(dataplane) : null;
  const loop = new AgentLoop({
    compiler: new NodeCompiler(options.node),
    dataplane: committed ?? dataplane,
    metrics,
    logger: log,
    resyncPeriodMs: options.resyncPeriodMs,
    ...(options.onCommitted !== undefined ? { onCommitted: options.onCommitted } : {}),
  });
  const server = new AgentServer({ rules: loop, metrics, logger: log, observability });
  let bound;
  try {
    bound = await server.listen(listen.host, listen.port);
  } catch (err) {
    backend.close();
    throw err;
  }
  // With the CNI socket, the source delivers to the gate, which folds the plugin's addresses into pods.
  let sink: SourceSink = loop;
  let cni: CniServer | null = null;
  if (options.cniSocket !== undefined && committed !== null) {
    const gate = new CniPodGate({ node: options.node, sink: loop, committed, logger: log });
    sink = gate;
    cni = new CniServer({ path: options.cniSocket, gate, ready: () => loop.ready(), registry: metrics.registry, logger: log });
    try {
      await cni.listen();
    } catch (err) {
      await server.close();
      backend.close();
      throw err;
    }
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
  log.info({ table: options.table, listen: `${bound.address}:${bound.port}`, source: options.datastoreFile ?? (options.kubeconfig ?? 'in-cluster') }, 'agent starting: the kernel table stays as found until the source is synced');
  source.start(teeSink(index, fanOut(enforcedOnly(sink, auditAll), auditRunner)));
  return {
    loop,
    metrics,
    address: { host: bound.address, port: bound.port },
    async stop(): Promise<void> {
      await source.stop();
      confWatcher?.close();
      await cni?.close();
      await server.close();
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
