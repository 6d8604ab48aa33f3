export { computeProbe, compileNodes, probeCases } from './compute';
export type { ProbeCase, ProbeFilter, ProbeResult } from './compute';
export { formatJson, formatTable } from './format';
