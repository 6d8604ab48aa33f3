// One error family for the whole agent: every error has a stable code and names the object it is about.
import type { ObjectRef } from './api';

export type ErrorCode = 'INVALID_OBJECT' | 'INVALID_INPUT' | 'DATAPLANE' | 'SANDBOX' | 'KUBERNETES_API';

export class AgentError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A Kubernetes object that cannot be enforced as written; says which object, which field, and what to do. */
export class InvalidObjectError extends AgentError {
  readonly kind: string;
  readonly ref: ObjectRef;
  readonly field: string;
  constructor(kind: string, ref: ObjectRef, field: string, problem: string) {
    super('INVALID_OBJECT', `${kind} ${formatRef(ref)}: ${field}: ${problem}`);
    this.kind = kind;
    this.ref = ref;
    this.field = field;
  }
}

/** Input that is not even a Kubernetes object (unparsable YAML, unreadable file). */
export class InvalidInputError extends AgentError {
  readonly source: string;
  constructor(source: string, problem: string, options?: { cause?: unknown }) {
    super('INVALID_INPUT', `${source}: ${problem}`, options);
    this.source = source;
  }
}

export function formatRef(ref: ObjectRef): string {
  return ref.namespace === '' ? ref.name : `${ref.namespace}/${ref.name}`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
