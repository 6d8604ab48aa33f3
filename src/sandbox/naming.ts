// Names of everything a sandbox creates. Namespace names carry the caller's prefix plus a run id made of
// our pid and random bytes, so two runs (even of the same test) never collide; interface names only have
// to be unique inside one of our own namespaces, so they are short counters.
import { randomBytes } from 'node:crypto';
import { SandboxError } from './errors';

const PREFIX_RE = /^[a-z0-9][a-z0-9-]{0,23}$/i;

export function checkPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new SandboxError(
      `sandbox prefix ${JSON.stringify(prefix)} is not usable: use 1-24 letters, digits or '-', starting with a letter or digit`,
    );
  }
}

export function newRunId(): string {
  return `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Keeps names readable in `ip netns list` without letting a pod key smuggle odd characters into a path. */
function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 48);
}

export class Names {
  readonly base: string;
  constructor(prefix: string, runId: string) {
    this.base = `${prefix}-${runId}`;
  }
  fabric(): string {
    return `${this.base}-fabric`;
  }
  node(index: number, node: string): string {
    return `${this.base}-n${index}-${slug(node)}`;
  }
  pod(seq: number, key: string): string {
    return `${this.base}-p${seq}-${slug(key)}`;
  }
}

/** Node-side end of a pod's veth (<= 15 characters, the kernel's limit). */
export function podVethName(seq: number): string {
  return `vp${seq.toString(36)}`;
}

/** Fabric-side end of a node's veth. */
export function fabricPortName(index: number): string {
  return `fn${index}`;
}

/** The node's interface into the fabric bridge. */
export const NODE_FABRIC_IF = 'fabric';
export const FABRIC_BRIDGE = 'fab0';
export const POD_IF = 'eth0';
export const NODE_BRIDGE = 'cni0';

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}
