// Checks a SandboxSpec before anything is created; every error names the pod or node and what to do.
import { PROTOCOLS } from '../api';
import { MAX_NODES, podAddresses, type PodAddress } from './addresses';
import { SandboxError } from './errors';
import { checkPrefix } from './naming';
import { NODE_SOURCE_PREFIX, TOPOLOGIES, type SandboxPodSpec, type SandboxPortSpec, type SandboxSpec } from './types';

export interface ValidPod {
  key: string;
  node: string;
  addrs: PodAddress[];
  ports: SandboxPortSpec[];
}

export function validateSpec(spec: SandboxSpec): ValidPod[] {
  checkPrefix(spec.prefix);
  if (!TOPOLOGIES.includes(spec.topology)) {
    throw new SandboxError(`sandbox topology ${JSON.stringify(spec.topology)} is unknown: use ${TOPOLOGIES.map((t) => `'${t}'`).join(' or ')}`);
  }
  if (spec.nodes.length === 0) throw new SandboxError('a sandbox needs at least one node: list node names in spec.nodes');
  if (spec.nodes.length > MAX_NODES) {
    throw new SandboxError(`a sandbox holds at most ${MAX_NODES} nodes (the fabric is one /24), got ${spec.nodes.length}`);
  }
  const seen = new Set<string>();
  for (const n of spec.nodes) {
    if (n === '' || /\s/.test(n)) throw new SandboxError(`node name ${JSON.stringify(n)} is not usable: give nodes non-empty names without spaces`);
    if (seen.has(n)) throw new SandboxError(`node ${n} is listed twice in spec.nodes; list each node once`);
    seen.add(n);
  }
  const owners = new Map<string, string>();
  const keys = new Set<string>();
  return spec.pods.map((p) => {
    if (keys.has(p.key)) throw new SandboxError(`pod ${p.key} is listed twice; give each pod once`);
    keys.add(p.key);
    const v = validatePod(p, seen);
    claimAddresses(v, owners);
    return v;
  });
}

export function validatePod(p: SandboxPodSpec, nodes: ReadonlySet<string>): ValidPod {
  if (!/^[^/\s]+\/[^/\s]+$/.test(p.key) || p.key.startsWith(NODE_SOURCE_PREFIX)) {
    throw new SandboxError(`pod key ${JSON.stringify(p.key)} is not "namespace/name"; name pods as namespace/name`);
  }
  if (!nodes.has(p.node)) {
    throw new SandboxError(`pod ${p.key} is on node ${JSON.stringify(p.node)}, which is not in the sandbox (nodes: ${[...nodes].join(', ')}); add the node to spec.nodes or fix the pod's node`);
  }
  const ports: SandboxPortSpec[] = [];
  for (const port of p.ports) {
    if (!Number.isInteger(port.port) || port.port < 1 || port.port > 65535) {
      throw new SandboxError(`pod ${p.key}: port ${JSON.stringify(port.port)} is not a port number (1-65535)`);
    }
    if (!PROTOCOLS.includes(port.protocol)) {
      throw new SandboxError(`pod ${p.key}: port ${port.port} has protocol ${JSON.stringify(port.protocol)}; use TCP, UDP or SCTP`);
    }
    if (!ports.some((q) => q.port === port.port && q.protocol === port.protocol)) ports.push({ port: port.port, protocol: port.protocol });
  }
  return { key: p.key, node: p.node, addrs: podAddresses(p.key, p.ips), ports };
}

/** Records the pod's addresses in `owners` (address -> pod key); throws if another pod holds one. */
export function claimAddresses(pod: ValidPod, owners: Map<string, string>): void {
  for (const a of pod.addrs) {
    const owner = owners.get(a.ip);
    if (owner !== undefined && owner !== pod.key) {
      throw new SandboxError(`pod ${pod.key} has address ${a.ip}, which pod ${owner} already has; remove ${owner} first or give ${pod.key} another address`);
    }
  }
  for (const a of pod.addrs) owners.set(a.ip, pod.key);
}
