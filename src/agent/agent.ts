// One agent: a cluster source, the loop that compiles and programs, and the HTTP endpoint, wired
// together. Stopping it leaves the kernel table in place, so enforcement continues until the next
// start adopts and reconciles it.
import type { Logger } from 'pino';
import type { ClusterSource, SourceSink } from '../api';
import { NodeCompiler } from '../compiler';
import { Dataplane, checkCniShape } from '../dataplane';
import { KernelNftBackend, Transaction } from '../dataplane/nft';
import type { NftBackend } from '../dataplane/nft';
import { FileSource } from '../source';
import { KubernetesSource } from '../source/kubernetes';
import { AgentLoop } from './agent-loop';
import { CniPodGate, CommitTracker } from './cni-gate';
import { CniServer } from './cni-server';
import type { AgentLoopOptions } from './agent-loop';
import { AgentServer, parseListen } from './http-server';
import { AgentMetrics } from './metrics';

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
  readonly logger: Logger;
  /** The nftables backend; default: the kernel, in this process's network namespace. */
  readonly backend?: NftBackend;
  /** Unix socket of netpol-agent-cni; no socket when absent. */
  readonly cniSocket?: string;
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

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.logger;
  const listen = parseListen(options.listen);
  const metrics = new AgentMetrics();
  const backend = options.backend ?? new KernelNftBackend({ table: options.table });
  const shape = checkCniShape();
  if (shape.problem !== null) log.warn({ shape: shape.shape }, shape.problem);
  const dataplane = new Dataplane(backend);
  const committed = options.cniSocket !== undefined ? new CommitTracker(dataplane) : null;
  const loop = new AgentLoop({
    compiler: new NodeCompiler(options.node),
    dataplane: committed ?? dataplane,
    metrics,
    logger: log,
    resyncPeriodMs: options.resyncPeriodMs,
    ...(options.onCommitted !== undefined ? { onCommitted: options.onCommitted } : {}),
  });
  const server = new AgentServer({ rules: loop, metrics, logger: log });
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
    cni = new CniServer({ path: options.cniSocket, gate, ready: () => loop.ready(), logger: log });
    try {
      await cni.listen();
    } catch (err) {
      await server.close();
      backend.close();
      throw err;
    }
    log.info({ cniSocket: options.cniSocket }, 'CNI socket listening: pods held at sandbox start until their rules are committed');
  }
  const source: ClusterSource = options.datastoreFile !== undefined
    ? new FileSource({ path: options.datastoreFile })
    : new KubernetesSource({ ...(options.kubeconfig !== undefined ? { kubeconfigPath: options.kubeconfig } : {}), metrics, logger: log });
  log.info({ table: options.table, listen: `${bound.address}:${bound.port}`, source: options.datastoreFile ?? (options.kubeconfig ?? 'in-cluster') }, 'agent starting: the kernel table stays as found until the source is synced');
  source.start(sink);
  return {
    loop,
    metrics,
    address: { host: bound.address, port: bound.port },
    async stop(): Promise<void> {
      await source.stop();
      await cni?.close();
      await server.close();
      await loop.stop();
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
