export { computeProbe, compileNodes, decideCases, probeCases } from './compute';
export type { ProbeCase, ProbeFilter, ProbeResult } from './compute';
export { formatJson, formatTable } from './format';
export { DataplaneLab, observeProbe, sandboxPods, UNSCHEDULED_NODE } from './observe';
export type { ObservedResult, ObserveOptions } from './observe';
