// The bridged (flannel/bridge-CNI-like) topology.
//
// Each node has a bridge cni0 and every local pod's veth is a port of it. Pods have an on-link default
// route (`default dev eth0`, `::/0 dev eth0`), so they ARP/NDP for every destination directly: a pod on
// the same node answers for itself and the frames between the two are BRIDGED by cni0, not routed. For
// pods on other nodes (and the nodes' fabric addresses) the node answers instead: proxy_arp for IPv4 (it
// answers when its route to the target leaves by another interface than cni0) and proxy NDP entries
// (`ip -6 neigh add proxy ADDR dev cni0`) for IPv6, both with proxy_delay 0 so the first packet is not
// held back. The node routes local pod addresses via cni0 and remote ones via the fabric.
//
// Bridged traffic and the node's nftables: with br_netfilter and net.bridge.bridge-nf-call-iptables=1 /
// bridge-nf-call-ip6tables=1 in the node namespace, IPv4 and IPv6 packets bridged between two ports of
// cni0 traverse the node's inet forward hook. Verified on this machine (kernel 6.18, nftables 1.0.6) and
// by test/netns/sandbox.test.ts: a rule `ip daddr POD drop` / `ip6 daddr POD drop` in a test table's
// `type filter hook forward` chain in the node namespace makes TCP and UDP between two pods on that node
// time out, and deleting the table restores it. Note for rule writers: for bridged packets the forward
// hook sees iifname and oifname "cni0" (the bridge), not the pods' veths; match pods by address.
import { existsSync } from 'node:fs';
import { GATEWAY_V6, hostPrefix, type PodAddress } from './addresses';
import { SandboxError } from './errors';
import { NODE_BRIDGE, POD_IF } from './naming';
import { run } from './run-command';
import {
  COMMON_NODE_SYSCTLS,
  fabricSetup,
  podLinkSetup,
  remoteRoutes,
  type NodeInfo,
  type PodInfo,
  type TopologyPlan,
} from './topology';

const BR_NF_SYSCTL = '/proc/sys/net/bridge/bridge-nf-call-iptables';

async function ensureBrNetfilter(): Promise<void> {
  if (existsSync(BR_NF_SYSCTL)) return;
  const res = await run('modprobe', ['br_netfilter'], { timeoutMs: 10_000 }).catch(() => null);
  if (existsSync(BR_NF_SYSCTL)) return;
  throw new SandboxError(
    'the bridged topology needs the br_netfilter kernel module (so bridged pod-to-pod packets reach the ' +
      `node's nftables forward hook), and ${BR_NF_SYSCTL} is absent` +
      (res === null ? ' (modprobe could not be run)' : ` (modprobe br_netfilter: ${res.stderr.trim() || `exit ${String(res.code)}`})`) +
      "; load br_netfilter on the host or use topology 'routed'",
  );
}

/** A fixed MAC, so the bridge does not take on (and later change to) the lowest port's MAC. */
function bridgeMac(node: NodeInfo): string {
  return `02:00:a9:fe:64:${(node.index + 1).toString(16).padStart(2, '0')}`;
}

function v6(addrs: readonly PodAddress[]): PodAddress[] {
  return addrs.filter((a) => a.family === 6);
}

export const bridgedPlan: TopologyPlan = {
  preflight: ensureBrNetfilter,
  nodeSysctls: [
    ...COMMON_NODE_SYSCTLS,
    'net.bridge.bridge-nf-call-iptables=1',
    'net.bridge.bridge-nf-call-ip6tables=1',
    'net.ipv4.conf.all.proxy_arp=1',
    'net.ipv6.conf.all.proxy_ndp=1',
  ],
  nodeSetup(node: NodeInfo, nodes: readonly NodeInfo[]): string[] {
    return [
      ...fabricSetup(node),
      // No multicast snooping: neighbour solicitations are flooded to every port without waiting for MLD.
      `link add name ${NODE_BRIDGE} address ${bridgeMac(node)} type bridge mcast_snooping 0`,
      `link set ${NODE_BRIDGE} addrgenmode none`,
      `addr add ${GATEWAY_V6}/64 dev ${NODE_BRIDGE} nodad`,
      `link set ${NODE_BRIDGE} up`,
      `ntable change name arp_cache dev ${NODE_BRIDGE} proxy_delay 0`,
      `ntable change name ndisc_cache dev ${NODE_BRIDGE} proxy_delay 0`,
      // Pods answer probes from nodes (whose source is a fabric address) by NDP on eth0; IPv4 needs no
      // entry (the node answers ARP for its own address and proxies the other nodes' by route).
      ...nodes.map((n) => `neigh add proxy ${n.fabricV6} dev ${NODE_BRIDGE}`),
    ];
  },
  podSetup(pod: PodInfo): string[] {
    const lines = podLinkSetup(pod, POD_IF);
    if (pod.addrs.some((a) => a.family === 4)) lines.push(`route add default dev ${POD_IF}`);
    if (pod.addrs.some((a) => a.family === 6)) lines.push(`route add ::/0 dev ${POD_IF}`);
    return lines;
  },
  attachLocal(pod: PodInfo): string[] {
    return [
      `link set ${pod.veth} master ${NODE_BRIDGE}`,
      `link set ${pod.veth} addrgenmode none`,
      `link set ${pod.veth} up`,
      ...pod.addrs.map((a) => `route add ${hostPrefix(a)} dev ${NODE_BRIDGE}`),
    ];
  },
  detachLocal(pod: PodInfo): string[] {
    return [
      ...pod.addrs.map((a) => `route del ${hostPrefix(a)} dev ${NODE_BRIDGE}`),
      ...pod.addrs.map((a) => `neigh flush to ${a.ip} dev ${NODE_BRIDGE}`),
      `link del ${pod.veth}`,
    ];
  },
  attachRemote(pod: PodInfo): string[] {
    return [...remoteRoutes(pod, 'add'), ...v6(pod.addrs).map((a) => `neigh add proxy ${a.ip} dev ${NODE_BRIDGE}`)];
  },
  detachRemote(pod: PodInfo): string[] {
    return [...remoteRoutes(pod, 'del'), ...v6(pod.addrs).map((a) => `neigh del proxy ${a.ip} dev ${NODE_BRIDGE}`)];
  },
  forgetNeighbours(addrs: readonly PodAddress[]): string[] {
    return addrs.map((a) => `neigh flush to ${a.ip} dev ${POD_IF}`);
  },
};
