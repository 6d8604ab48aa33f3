export { Dataplane, DataplaneError } from './dataplane';
export type { SyncReport, DataplaneOptions, GroupCounterReport } from './dataplane';
export { DEFAULT_TABLE } from './layout';
export { checkCniShape, localHostFiles, netnsHostFiles } from './host-check';
export type { CniShape, HostFiles } from './host-check';
