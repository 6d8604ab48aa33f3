export { loadManifests, addObject, decodeObjects, emptyClusterObjects } from './manifests';
export type { ClusterObjects } from './manifests';
export { eventsBetween } from './events';
export { FileSource } from './file-source';
export type { FileSourceOptions } from './file-source';
