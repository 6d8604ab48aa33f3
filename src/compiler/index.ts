export { NodeCompiler } from './node-compiler';
export { objectKey } from '../api';
export { selectorMatches } from './selector';
