// One agent: a cluster source, the loop that compiles and programs, and the HTTP endpoint, wired
// together. Stopping it leaves the kernel table in place, so enforcement continues until the next
// start adopts and reconciles it.
import type { Logger } from 'pino';
import type { ClusterSource } from '../api';
import { NodeCompiler } from '../compiler';
import { Dataplane, checkCniShape } from '../dataplane';
import { KernelNftBackend, Transaction } from '../dataplane/nft';
import type { NftBackend } from '../dataplane/nft';
import { FileSource } from '../source';
import { KubernetesSource } from '../source/kubernetes';
import { AgentLoop } from './agent-loop';
import type { AgentLoopOptions } from './agent-loop';
import { AgentServer, parseListen } from './http-server';
import { AgentMetrics } from './metrics';
import { Observability } from './observability';

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
  const observability = new Observability({ dataplane, metrics });
  const loop = new AgentLoop({
    compiler: new NodeCompiler(options.node),
    dataplane,
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
  const source: ClusterSource = options.datastoreFile !== undefined
    ? new FileSource({ path: options.datastoreFile })
    : new KubernetesSource({ ...(options.kubeconfig !== undefined ? { kubeconfigPath: options.kubeconfig } : {}), metrics, logger: log });
  log.info({ table: options.table, listen: `${bound.address}:${bound.port}`, source: options.datastoreFile ?? (options.kubeconfig ?? 'in-cluster') }, 'agent starting: the kernel table stays as found until the source is synced');
  source.start(loop);
  return {
    loop,
    metrics,
    address: { host: bound.address, port: bound.port },
    async stop(): Promise<void> {
      await source.stop();
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
