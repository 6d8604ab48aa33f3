export { NodeCompiler, podKey } from './node-compiler';
export { selectorMatches } from './selector';
