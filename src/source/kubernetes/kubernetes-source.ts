// The Kubernetes API as a source of cluster state: Namespaces, Pods and NetworkPolicies of the whole
// cluster, each listed then watched by its own reflector, reduced to the engine's records as they arrive.
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterEvent, ClusterSource, ObjectKind, ObjectRef, SourceSink } from '../../api';
import { AgentError, errorMessage } from '../../errors';
import { ApiClient } from './api-client';
import { DEFAULT_BACKOFF } from './backoff';
import type { BackoffOptions } from './backoff';
import { KINDS } from './kinds';
import { Reflector } from './reflector';
import type { ReflectorOutput, ReflectorTiming, SourceLogger, SourceMetrics } from './reflector';

export interface KubernetesSourceOptions {
  /** A kubeconfig file; without it, the in-cluster config (service account token and CA). */
  readonly kubeconfigPath?: string;
  readonly metrics?: SourceMetrics;
  readonly logger?: SourceLogger;
  /** Objects per list page. Default 500 (as client-go's reflector). */
  readonly pageSize?: number;
  /** Server-side watch timeout; each watch asks for it times a random factor in [1, 2). Default 300 s. */
  readonly watchTimeoutSeconds?: number;
  /**
   * The watchdog: a watch with no event or bookmark for this long is aborted and restarted. The API
   * server sends a bookmark about every minute to watches that allow them. Default 150 s.
   */
  readonly silenceTimeoutMs?: number;
  /** The longest a list page may take. Default 60 s. */
  readonly requestTimeoutMs?: number;
  /** Restart delays. Default 0.8 s doubling to 30 s, each scaled by a random factor in [0.5, 1.5). */
  readonly backoff?: BackoffOptions;
  /** The source of jitter, in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /**
   * Read the initial state with streaming lists (WatchList: a watch with sendInitialEvents=true, served
   * from the watch cache without building a list response) instead of paginated lists; falls back to
   * lists where the server refuses them. Default false.
   */
  readonly streamingList?: boolean;
}

function loadKubeConfig(kubeconfigPath: string | undefined): KubeConfig {
  // Loaded here, not at import: the library costs about 65 MiB of RSS and seconds of startup, which an
  // agent reading local manifest files should not pay.
  const { KubeConfig: KubeConfigClass } = require('@kubernetes/client-node') as typeof import('@kubernetes/client-node');
  const kc = new KubeConfigClass();
  if (kubeconfigPath !== undefined) {
    try {
      kc.loadFromFile(kubeconfigPath);
    } catch (err) {
      throw new AgentError('KUBERNETES_API', `cannot load the kubeconfig ${kubeconfigPath}: ${errorMessage(err)}`, { cause: err });
    }
    return kc;
  }
  if (process.env['KUBERNETES_SERVICE_HOST'] === undefined || process.env['KUBERNETES_SERVICE_PORT'] === undefined) {
    throw new AgentError('KUBERNETES_API', 'not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): pass --kubeconfig, or --datastore-file for local manifests');
  }
  kc.loadFromCluster();
  return kc;
}

export class KubernetesSource implements ClusterSource {
  private readonly client: ApiClient;
  private readonly timing: ReflectorTiming;
  private controller: AbortController | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly options: KubernetesSourceOptions = {}) {
    this.client = new ApiClient(loadKubeConfig(options.kubeconfigPath));
    this.timing = {
      pageSize: options.pageSize ?? 500,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      silenceTimeoutMs: options.silenceTimeoutMs ?? 150_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      random: options.random ?? Math.random,
      streamingList: options.streamingList ?? false,
    };
  }

  /** The API server this source reads from. */
  get server(): string {
    return this.client.serverUrl;
  }

  start(sink: SourceSink): void {
    if (this.controller !== null) throw new AgentError('KUBERNETES_API', 'the Kubernetes source is already started');
    const controller = new AbortController();
    this.controller = controller;
    const live = (): boolean => !controller.signal.aborted;
    const listed = new Set<ObjectKind>();
    const out: ReflectorOutput = {
      events: (batch: readonly ClusterEvent[]) => { if (live()) sink.events(batch); },
      rejected: (kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown) => { if (live()) sink.rejected(kind, ref, reason, raw); },
      problem: (message: string, cause?: unknown) => { if (live()) sink.problem(message, cause); },
      health: (kind: ObjectKind, failure: string | null) => { if (live()) sink.health(kind, failure); },
      listed: (kind: ObjectKind, first: boolean) => {
        if (!first || !live()) return;
        listed.add(kind);
        if (listed.size === KINDS.length) {
          this.options.logger?.info({ server: this.client.serverUrl }, 'first list of namespaces, pods and network policies complete');
          sink.synced();
        }
      },
      metrics: this.options.metrics,
      logger: this.options.logger,
    };
    for (const spec of KINDS) sink.health(spec.kind, `${spec.resource}: not listed yet`);
    const reflectors = KINDS.map((spec) => new Reflector(spec, this.client, out, this.timing, controller.signal));
    this.running = Promise.all(reflectors.map((r) => r.run())).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.running;
  }
}
