export { loadManifests, addObject } from './manifests';
export type { ClusterObjects } from './manifests';
