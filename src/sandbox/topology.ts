// What a topology has to say about plumbing; sandbox.ts runs the lines it returns with `ip -n NS -batch -`.
// Everything here is shared by both topologies: the fabric between nodes and the per-remote-pod routes.
import type { PodAddress } from './addresses';
import { hostPrefix } from './addresses';
import { NODE_FABRIC_IF } from './naming';

export interface NodeInfo {
  name: string;
  index: number;
  netns: string;
  fabricV4: string;
  fabricV6: string;
}

export interface PodInfo {
  key: string;
  node: NodeInfo;
  netns: string;
  seq: number;
  /** Node-side end of the pod's veth. */
  veth: string;
  addrs: PodAddress[];
}

export interface TopologyPlan {
  /** Checks the kernel can do this topology; throws a SandboxError saying what to do if not. */
  preflight(): Promise<void>;
  /** sysctls for every node namespace, set before any interface exists in it. */
  nodeSysctls: readonly string[];
  /** Lines for a node namespace once its fabric link exists (all nodes are known). */
  nodeSetup(node: NodeInfo, nodes: readonly NodeInfo[]): string[];
  /** Lines for a pod namespace: creates eth0 with its peer in the node namespace, addresses, routes. */
  podSetup(pod: PodInfo): string[];
  /** Lines for the pod's node: brings up and wires the node side of the pod link. */
  attachLocal(pod: PodInfo): string[];
  /** Lines for the pod's node when the pod goes (before its namespace is deleted). */
  detachLocal(pod: PodInfo): string[];
  /** Lines for every other node: how to reach the pod. */
  attachRemote(pod: PodInfo): string[];
  detachRemote(pod: PodInfo): string[];
  /**
   * Lines for the namespaces of the other pods on the pod's node when an address appears or disappears
   * there, so a reused address is not sent to a dead MAC; empty when pods never cache each other's MACs.
   */
  forgetNeighbours(addrs: readonly PodAddress[]): string[];
}

/** The node's side of the fabric, and loopback. */
export function fabricSetup(node: NodeInfo): string[] {
  return [
    'link set lo up',
    `addr add ${node.fabricV4}/24 dev ${NODE_FABRIC_IF}`,
    `addr add ${node.fabricV6}/64 dev ${NODE_FABRIC_IF} nodad`,
    `link set ${NODE_FABRIC_IF} up`,
  ];
}

/** One /32 or /128 route per remote pod address, via the pod's node's fabric address. */
export function remoteRoutes(pod: PodInfo, op: 'add' | 'del'): string[] {
  return pod.addrs.map(
    (a) => `route ${op} ${hostPrefix(a)} via ${a.family === 4 ? pod.node.fabricV4 : pod.node.fabricV6} dev ${NODE_FABRIC_IF}`,
  );
}

/** sysctls both topologies need in a node: forwarding, no DAD delays, no reverse-path filtering. */
export const COMMON_NODE_SYSCTLS: readonly string[] = [
  'net.ipv4.ip_forward=1',
  'net.ipv6.conf.all.forwarding=1',
  'net.ipv6.conf.default.forwarding=1',
  // Interfaces created later get no duplicate address detection, so their link-local addresses are
  // usable at once (the kernel sends no neighbour solicitation from a tentative address).
  'net.ipv6.conf.all.accept_dad=0',
  'net.ipv6.conf.default.accept_dad=0',
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  // A packet a node sends back out the interface it came in on is forwarded, not redirected.
  'net.ipv4.conf.all.send_redirects=0',
  'net.ipv4.conf.default.send_redirects=0',
  'net.ipv4.conf.all.arp_ignore=0',
  'net.ipv4.conf.all.arp_announce=0',
];

/** Pod lines both topologies share: loopback, the veth pair, and the addresses. */
export function podLinkSetup(pod: PodInfo, podIf: string): string[] {
  return [
    'link set lo up',
    `link add name ${podIf} type veth peer name ${pod.veth} netns ${pod.node.netns}`,
    // No autoconfigured link-local (it would sit in DAD for a second); neighbour discovery then uses
    // the pod's own address, which is usable at once thanks to nodad.
    `link set ${podIf} addrgenmode none`,
    `link set ${podIf} up`,
    ...pod.addrs.map((a) => `addr add ${hostPrefix(a)} dev ${podIf}${a.family === 6 ? ' nodad' : ''}`),
  ];
}
