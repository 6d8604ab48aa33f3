// PLACEHOLDER (branch `agent` only; drop on merge): the Kubernetes source is built on the k8s-source
// branch. This stand-in only gives `netpol-agent run` something to import and compile against; it
// reports that it is not available and never syncs.
import type { ClusterSource, SourceSink } from '../../api';

export interface KubernetesSourceOptions {
  readonly kubeconfigPath?: string;
  readonly metrics?: {
    watchRestarted(kind: string, reason: string): void;
    relisted(kind: string): void;
    objects(kind: string, count: number): void;
  };
  readonly logger?: {
    debug(obj: object, msg: string): void;
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
}

export class KubernetesSource implements ClusterSource {
  constructor(private readonly options: KubernetesSourceOptions = {}) {}

  start(sink: SourceSink): void {
    sink.problem(`the Kubernetes source is not built into this branch (kubeconfig ${this.options.kubeconfigPath ?? 'in-cluster'}); use --datastore-file`);
  }

  async stop(): Promise<void> {}
}
