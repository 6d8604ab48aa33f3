// The base cluster of the upstream Kubernetes NetworkPolicy e2e suite
// (kubernetes/kubernetes test/e2e/network/netpol: model.go, kubemanager.go),
// as plain Kubernetes objects shaped like `kubectl get -o json` output.
//
// Upstream builds 3 namespaces (x, y, z; it suffixes random strings, we do not)
// with 3 pods each (a, b, c). Every pod is labelled `pod: <name>` and serves
// ports 80 and 81 on TCP, UDP and SCTP; the container ports are named
// `serve-<port>-<protocol>` exactly as upstream's Container.PortName(). Upstream
// runs one agnhost container per (port, protocol); we declare the same six
// named ports on a single container, which is equivalent for policy purposes
// (named ports resolve per pod).

import type { IpFamily, Protocol } from '../../src/api';

// ---------------------------------------------------------------------------
// Kubernetes object shapes (only the fields the conformance data uses).
// ---------------------------------------------------------------------------

export type LabelMap = Record<string, string>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: LabelMap;
}

export interface NamespaceObject {
  apiVersion: 'v1';
  kind: 'Namespace';
  metadata: ObjectMeta;
  spec: { finalizers: string[] };
  status: { phase: 'Active' };
}

export interface ContainerPortObject {
  name: string;
  containerPort: number;
  protocol: Protocol;
}

export interface ContainerObject {
  name: string;
  image: string;
  ports: ContainerPortObject[];
}

export interface PodObject {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta & { namespace: string };
  spec: {
    nodeName: string;
    terminationGracePeriodSeconds: number;
    containers: ContainerObject[];
  };
  status: {
    phase: 'Running';
    hostIP: string;
    hostIPs: { ip: string }[];
    podIP: string;
    podIPs: { ip: string }[];
  };
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirementObject {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelectorObject {
  matchLabels?: LabelMap;
  matchExpressions?: LabelSelectorRequirementObject[];
}

export interface IPBlockObject {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeerObject {
  podSelector?: LabelSelectorObject;
  namespaceSelector?: LabelSelectorObject;
  ipBlock?: IPBlockObject;
}

export interface NetworkPolicyPortObject {
  /** Omitted means TCP (the API server defaults it). */
  protocol?: Protocol;
  /** A number, or a container port name; omitted means every port. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRuleObject {
  from?: NetworkPolicyPeerObject[];
  ports?: NetworkPolicyPortObject[];
}

export interface NetworkPolicyEgressRuleObject {
  to?: NetworkPolicyPeerObject[];
  ports?: NetworkPolicyPortObject[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicyObject {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string; labels?: LabelMap };
  spec: {
    podSelector: LabelSelectorObject;
    policyTypes?: PolicyType[];
    ingress?: NetworkPolicyIngressRuleObject[];
    egress?: NetworkPolicyEgressRuleObject[];
  };
}

export type KubeObject = NamespaceObject | PodObject | NetworkPolicyObject;

// ---------------------------------------------------------------------------
// The topology.
// ---------------------------------------------------------------------------

/** Upstream's namespace base names, used literally. */
export const NAMESPACE_NAMES = ['x', 'y', 'z'] as const;
/** Upstream's pod names, the same in every namespace. */
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const PORTS = [80, 81] as const;
export const SERVED_PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
export const NODE_NAMES = ['node-1', 'node-2'] as const;

/** The label upstream (model.go) puts on its namespaces: `ns: <name>`. */
export const NAMESPACE_LABEL_KEY = 'ns';
/** The label the API server always sets on a namespace. */
export const METADATA_NAME_LABEL_KEY = 'kubernetes.io/metadata.name';
/** The label upstream puts on its pods: `pod: <name>`. */
export const POD_LABEL_KEY = 'pod';

/** "x/a" style keys in upstream order (namespace-major), 9 of them. */
export const POD_KEYS: readonly string[] = NAMESPACE_NAMES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));

/** The container port name upstream uses: serve-80-tcp, serve-81-udp, ... */
export function portName(port: number, protocol: Protocol): string {
  return `serve-${port}-${protocol.toLowerCase()}`;
}

export function splitPodKey(key: string): { namespace: string; name: string } {
  const parts = key.split('/');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new Error(`expected a pod key like "x/a", got "${key}"`);
  }
  return { namespace: parts[0] as string, name: parts[1] as string };
}

export interface BaseCluster {
  readonly dualStack: boolean;
  /** Fresh copies; the cases never mutate them. */
  readonly namespaces: NamespaceObject[];
  readonly pods: PodObject[];
  /** "x/a", "x/b", ..., "z/c" (upstream order). */
  readonly podKeys: string[];
  readonly nodes: string[];
  /** The pod's IP of that family; throws if the cluster has none (IPv6 on single-stack). */
  podIp(key: string, family: IpFamily): string;
  /** The node a pod runs on. */
  nodeOf(key: string): string;
  /** A deep copy of a base pod. */
  pod(key: string): PodObject;
  /** A deep copy of a base namespace. */
  namespace(name: string): NamespaceObject;
  /** A deep copy of the base pod with `labels` merged into its labels (upstream AddPodLabels). */
  podWithLabels(key: string, labels: LabelMap): PodObject;
  /** A deep copy of the base namespace with `labels` merged into its labels (upstream AddNamespaceLabel). */
  namespaceWithLabels(name: string, labels: LabelMap): NamespaceObject;
}

const AGNHOST_IMAGE = 'registry.k8s.io/e2e-test-images/agnhost';

interface PodPlacement {
  key: string;
  node: string;
  ipv4: string;
  ipv6: string;
}

/**
 * Deterministic placement: pods in upstream order alternate between node-1 and
 * node-2, so both same-node (x/a, x/c) and cross-node (x/a, x/b) pairs occur.
 * Node n owns 10.244.n.0/24 (and fd00:10:244::n:0/112); the m-th pod placed on
 * it gets host part 10 + m.
 */
function placements(): PodPlacement[] {
  const perNode = new Map<string, number>();
  return POD_KEYS.map((key, i) => {
    const nodeIndex = i % NODE_NAMES.length;
    const node = NODE_NAMES[nodeIndex] as string;
    const seq = perNode.get(node) ?? 0;
    perNode.set(node, seq + 1);
    const n = nodeIndex + 1;
    const m = 10 + seq;
    return { key, node, ipv4: `10.244.${n}.${m}`, ipv6: `fd00:10:244::${n}:${m}` };
  });
}

function hostIps(node: string, dualStack: boolean): string[] {
  const n = NODE_NAMES.indexOf(node as (typeof NODE_NAMES)[number]) + 2;
  return dualStack ? [`172.18.0.${n}`, `fc00:f853:ccd:e793::${n}`] : [`172.18.0.${n}`];
}

function makeNamespace(name: string): NamespaceObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: `00000000-0000-4000-8000-${(NAMESPACE_NAMES.indexOf(name as (typeof NAMESPACE_NAMES)[number]) + 1).toString(16).padStart(12, '0')}`,
      labels: { [NAMESPACE_LABEL_KEY]: name, [METADATA_NAME_LABEL_KEY]: name },
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

function makePod(p: PodPlacement, index: number, dualStack: boolean): PodObject {
  const { namespace, name } = splitPodKey(p.key);
  const ports: ContainerPortObject[] = [];
  for (const port of PORTS) {
    for (const protocol of SERVED_PROTOCOLS) {
      ports.push({ name: portName(port, protocol), containerPort: port, protocol });
    }
  }
  const ips = dualStack ? [p.ipv4, p.ipv6] : [p.ipv4];
  const hosts = hostIps(p.node, dualStack);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      uid: `00000000-0000-4000-8000-${(0x100 + index).toString(16).padStart(12, '0')}`,
      labels: { [POD_LABEL_KEY]: name },
    },
    spec: {
      nodeName: p.node,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'agnhost', image: AGNHOST_IMAGE, ports }],
    },
    status: {
      phase: 'Running',
      hostIP: hosts[0] as string,
      hostIPs: hosts.map((ip) => ({ ip })),
      podIP: ips[0] as string,
      podIPs: ips.map((ip) => ({ ip })),
    },
  };
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function baseCluster(options: { dualStack: boolean }): BaseCluster {
  const dualStack = options.dualStack;
  const placed = placements();
  const byKey = new Map(placed.map((p) => [p.key, p]));
  const namespaces = NAMESPACE_NAMES.map(makeNamespace);
  const pods = placed.map((p, i) => makePod(p, i, dualStack));
  const podByKey = new Map(pods.map((pod) => [`${pod.metadata.namespace}/${pod.metadata.name}`, pod]));
  const nsByName = new Map(namespaces.map((ns) => [ns.metadata.name, ns]));

  const placementOf = (key: string): PodPlacement => {
    const p = byKey.get(key);
    if (p === undefined) throw new Error(`unknown pod "${key}"`);
    return p;
  };
  const pod = (key: string): PodObject => {
    const p = podByKey.get(key);
    if (p === undefined) throw new Error(`unknown pod "${key}"`);
    return clone(p);
  };
  const namespace = (name: string): NamespaceObject => {
    const ns = nsByName.get(name);
    if (ns === undefined) throw new Error(`unknown namespace "${name}"`);
    return clone(ns);
  };

  return {
    dualStack,
    namespaces: clone(namespaces),
    pods: clone(pods),
    podKeys: [...POD_KEYS],
    nodes: [...NODE_NAMES],
    podIp(key: string, family: IpFamily): string {
      const p = placementOf(key);
      if (family === 4) return p.ipv4;
      if (!dualStack) throw new Error(`pod "${key}" has no IPv6 address: the cluster is single-stack IPv4`);
      return p.ipv6;
    },
    nodeOf(key: string): string {
      return placementOf(key).node;
    },
    pod,
    namespace,
    podWithLabels(key: string, labels: LabelMap): PodObject {
      const p = pod(key);
      p.metadata.labels = { ...(p.metadata.labels ?? {}), ...labels };
      return p;
    },
    namespaceWithLabels(name: string, labels: LabelMap): NamespaceObject {
      const ns = namespace(name);
      ns.metadata.labels = { ...(ns.metadata.labels ?? {}), ...labels };
      return ns;
    },
  };
}
