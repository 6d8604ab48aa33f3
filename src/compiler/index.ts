export { NodeCompiler, DEFAULT_PEER_CACHE_MEMBERS } from './node-compiler';
export type { NodeCompilerOptions } from './node-compiler';
export type { PeerSetStats } from './peer-sets';
export { objectKey } from '../api';
export { selectorMatches } from './selector';
