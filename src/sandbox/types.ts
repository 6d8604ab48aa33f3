// Public types of the sandbox: a fake cluster network built from Linux network namespaces.
import type { Protocol } from '../api';

/**
 * routed: ptp/Calico-like, each pod is a /32 and /128 behind its own veth, the node routes every packet.
 * bridged: flannel/bridge-CNI-like, pods on one node share the bridge cni0 and talk to each other at L2.
 */
export type Topology = 'routed' | 'bridged';
export const TOPOLOGIES: readonly Topology[] = ['routed', 'bridged'];

export interface SandboxPortSpec {
  port: number;
  protocol: Protocol;
}

export interface SandboxPodSpec {
  /** "namespace/name" */
  key: string;
  node: string;
  /** From status.podIPs: IPv4 and/or IPv6. */
  ips: string[];
  /** The pod's helper serves these (TCP: answers one HTTP response and closes; UDP: echoes). */
  ports: SandboxPortSpec[];
}

export interface SandboxSpec {
  /** Names every namespace this sandbox creates ("<prefix>-<run id>-..."); letters, digits and '-'. */
  prefix: string;
  topology: Topology;
  nodes: string[];
  pods: SandboxPodSpec[];
}

export type ProbeOutcome = 'connected' | 'refused' | 'timeout' | 'skipped' | 'error';

export interface ProbeRequest {
  /** A pod key, or "node:NAME" to probe from a node's own network namespace. */
  from: string;
  toIp: string;
  port: number;
  protocol: Protocol;
  timeoutMs: number;
}

export interface ProbeResult {
  req: ProbeRequest;
  outcome: ProbeOutcome;
  detail: string;
}

export interface ExecResult {
  /** null when the command was killed (timeout, or the sandbox was destroyed). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Prefix of ProbeRequest.from (and of exec's target) that names a node instead of a pod. */
export const NODE_SOURCE_PREFIX = 'node:';
