export { KubernetesSource } from './kubernetes-source';
export type { KubernetesSourceOptions } from './kubernetes-source';
export type { SourceLogger, SourceMetrics, WatchRestartReason } from './reflector';
export type { BackoffOptions } from './backoff';
export { DEFAULT_BACKOFF } from './backoff';
export { ApiRequestError } from './api-client';
