// The routed (ptp/Calico-like) topology. Each pod has eth0 with its addresses as /32 and /128 and a
// default route via a link-local gateway: 169.254.1.1 (onlink) and fe80::1. The node owns 169.254.1.1 on
// lo, so it answers ARP for it on every pod link (arp_ignore=0), and puts fe80::1 on the node side of
// every pod veth. The node routes each local pod address via that pod's veth, so every packet between
// two pods, even on one node, is routed by the node and passes its inet forward hook.
import { GATEWAY_V4, GATEWAY_V6, hostPrefix } from './addresses';
import { POD_IF } from './naming';
import {
  COMMON_NODE_SYSCTLS,
  fabricSetup,
  podLinkSetup,
  remoteRoutes,
  type NodeInfo,
  type PodInfo,
  type TopologyPlan,
} from './topology';

export const routedPlan: TopologyPlan = {
  preflight: async () => undefined,
  nodeSysctls: COMMON_NODE_SYSCTLS,
  nodeSetup(node: NodeInfo): string[] {
    return [...fabricSetup(node), `addr add ${GATEWAY_V4}/32 dev lo`];
  },
  podSetup(pod: PodInfo): string[] {
    const lines = podLinkSetup(pod, POD_IF);
    if (pod.addrs.some((a) => a.family === 4)) lines.push(`route add default via ${GATEWAY_V4} dev ${POD_IF} onlink`);
    if (pod.addrs.some((a) => a.family === 6)) lines.push(`route add ::/0 via ${GATEWAY_V6} dev ${POD_IF}`);
    return lines;
  },
  attachLocal(pod: PodInfo): string[] {
    return [
      `link set ${pod.veth} up`,
      `addr add ${GATEWAY_V6}/64 dev ${pod.veth} nodad`,
      ...pod.addrs.map((a) => `route add ${hostPrefix(a)} dev ${pod.veth}`),
    ];
  },
  detachLocal(pod: PodInfo): string[] {
    // Deleting the veth takes its routes and neighbour entries with it.
    return [`link del ${pod.veth}`];
  },
  attachRemote: (pod) => remoteRoutes(pod, 'add'),
  detachRemote: (pod) => remoteRoutes(pod, 'del'),
  forgetNeighbours: () => [],
};
