export { ElementStore, elementKey, portMatchText } from './elements';
export { buildRuleTable } from './view';
export { RuleState, podDirectionKey, portMatches } from './rule-state';
export type { AllowSpan, Touched, Verdict } from './rule-state';
