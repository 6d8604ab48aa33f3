export { ElementStore, elementKey, portMatchText } from './elements';
export { buildRuleTable } from './view';
export { RuleTableIndex, portMatches } from './evaluate';
export type { Verdict } from './evaluate';
