export { Dataplane, DataplaneError } from './dataplane';
export type { SyncReport } from './dataplane';
export { DEFAULT_TABLE } from './layout';
