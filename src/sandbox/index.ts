// The sandbox: a fake cluster network out of Linux network namespaces, for `probe --dataplane`, the e2e
// kubelet and the demo. See sandbox.ts (what it builds), routed.ts and bridged.ts (the two topologies).
export { Sandbox } from './sandbox';
export { SandboxError } from './errors';
export {
  NODE_SOURCE_PREFIX,
  TOPOLOGIES,
  type ExecResult,
  type ProbeOutcome,
  type ProbeRequest,
  type ProbeResult,
  type SandboxPodSpec,
  type SandboxPortSpec,
  type SandboxSpec,
  type Topology,
} from './types';
export { FABRIC_V4_CIDR, FABRIC_V6_CIDR, GATEWAY_V4, GATEWAY_V6 } from './addresses';
