// The JSON-lines protocol between a Sandbox and the helper process it runs in each pod/node namespace.
// Types only: the compiled helper must not load anything else from this tree.
import type { Protocol } from '../api';
import type { ProbeOutcome, SandboxPortSpec } from './types';

/** Passed to the helper as its only argument. */
export interface HelperConfig {
  /** "pod ns/name" or "node n1": what the helper says it is, in answers and errors. */
  label: string;
  ports: SandboxPortSpec[];
}

/** Parent -> helper, one per line on stdin. */
export interface HelperProbeCommand {
  id: number;
  toIp: string;
  port: number;
  protocol: Protocol;
  timeoutMs: number;
}

export interface HelperNotServing {
  port: number;
  protocol: Protocol;
  reason: string;
}

/** Helper -> parent, one per line on stdout. */
export type HelperMessage =
  | { type: 'ready'; serving: string[]; notServing: HelperNotServing[] }
  | { type: 'result'; id: number; outcome: ProbeOutcome; detail: string };

