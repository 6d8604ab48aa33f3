export { loadManifests, addObject, decodeObjects, emptyClusterObjects } from './manifests';
export type { ClusterObjects } from './manifests';
export { eventsBetween } from './events';
