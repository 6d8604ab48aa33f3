export { startAgent, removeTable, auditTableName, DEFAULT_DROP_LOGGING } from './agent';
export type { AgentOptions, RunningAgent } from './agent';
export { AgentLoop } from './agent-loop';
export type { AgentLoopOptions, CommitInfo, LoopDataplane, NotEnforceable, RejectedObject, SyncStatus } from './agent-loop';
export { AgentMetrics } from './metrics';
export type { EventClass } from './metrics';
export { AgentServer, parseListen } from './http-server';
export { buildRulesReport, formatRulesText } from './rules-report';
export type { RulesReport, RulesQuery } from './rules-report';
