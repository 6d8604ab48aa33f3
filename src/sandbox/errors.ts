import { AgentError } from '../errors';

/** Anything the sandbox could not build, run or tear down; the message names the pod/node and what to do. */
export class SandboxError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SANDBOX', message, options);
  }
}
