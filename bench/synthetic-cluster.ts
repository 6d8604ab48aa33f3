// The one synthetic-cluster generator behind every benchmark and the randomized tests: a seeded,
// realistic mix of namespaces, pods and NetworkPolicies (app labels, namespace selectors,
// matchExpressions, ipBlocks with excepts, named ports, port ranges, default-deny policies).
import { formatIp } from '../src/net/ip';
import { eventsBetween } from '../src/source';
import type { ClusterEvent, NamespaceState, PodState, PolicyPeer, PolicyRule, PolicyState, PortSpec, Selector } from '../src/api';

export interface SyntheticOptions {
  readonly seed: number;
  readonly namespaces: number;
  readonly nodes: number;
  readonly pods: number;
  readonly policies: number;
  /** Share of pods that also get an IPv6 address. */
  readonly dualStackShare?: number;
  /** Distinct app labels per namespace; fewer means denser selection (default 8). */
  readonly appsPerNamespace?: number;
}

export interface SyntheticCluster {
  readonly namespaces: NamespaceState[];
  readonly pods: PodState[];
  readonly policies: PolicyState[];
  readonly nodes: string[];
}

/** mulberry32: small, fast, deterministic. */
export function makeRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEAMS = 20;
const DEFAULT_APPS_PER_NAMESPACE = 8;
const ENVS = ['prod', 'staging', 'dev'];
const TIERS = ['web', 'api', 'db', 'cache'];

export class SyntheticGenerator {
  readonly random: () => number;
  private podCounter = 0;
  private policyCounter = 0;

  constructor(readonly options: SyntheticOptions) {
    this.random = makeRandom(options.seed);
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  namespaceName(i: number): string {
    return i === 0 ? 'monitoring' : `ns-${i}`;
  }

  nodeName(i: number): string {
    return `node-${i}`;
  }

  namespace(i: number): NamespaceState {
    const name = this.namespaceName(i);
    return {
      name,
      labels: {
        'kubernetes.io/metadata.name': name,
        team: `t${i % TEAMS}`,
        env: ENVS[i % ENVS.length] as string,
        ...(i === 0 ? { purpose: 'monitoring' } : {}),
      },
    };
  }

  /** A pod with a fresh IP (IPv4 from 10.0.0.0/8, IPv6 from fd00::/64 for a share of them). */
  pod(namespace: string, node: string): PodState {
    const n = this.podCounter++;
    const ips = [`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`];
    if (this.random() < (this.options.dualStackShare ?? 0.1)) ips.push(formatIp(6, 0xfd00n << 112n | BigInt(n)));
    return {
      namespace,
      name: `pod-${n}`,
      uid: `uid-${n}`,
      labels: this.podLabels(),
      nodeName: node,
      hostNetwork: false,
      phase: 'Running',
      ips,
      ports: [
        { name: 'http', port: 8080 + this.int(3), protocol: 'TCP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
        ...(this.random() < 0.2 ? [{ name: 'dns', port: 53, protocol: 'UDP' as const }] : []),
      ],
    };
  }

  podLabels(): Record<string, string> {
    return {
      app: `app-${this.int(this.options.appsPerNamespace ?? DEFAULT_APPS_PER_NAMESPACE)}`,
      tier: this.pick(TIERS),
      ...(this.random() < 0.5 ? { version: `v${this.int(3)}` } : {}),
      ...(this.random() < 0.3 ? { access: 'true' } : {}),
    };
  }

  private appSelector(): Selector {
    return { requirements: [{ key: 'app', operator: 'In', values: [`app-${this.int(this.options.appsPerNamespace ?? DEFAULT_APPS_PER_NAMESPACE)}`] }] };
  }

  private port(): PortSpec {
    const r = this.random();
    if (r < 0.4) return { kind: 'named', protocol: 'TCP', name: 'http' };
    if (r < 0.7) return { kind: 'number', protocol: 'TCP', port: 8080, endPort: 8080 };
    if (r < 0.85) return { kind: 'number', protocol: 'TCP', port: 8000, endPort: 8100 };
    return { kind: 'named', protocol: 'UDP', name: 'dns' };
  }

  private peer(): PolicyPeer {
    const r = this.random();
    if (r < 0.45) return { kind: 'pods', podSelector: this.appSelector(), namespaceSelector: null };
    if (r < 0.6) {
      return {
        kind: 'pods',
        podSelector: { requirements: [{ key: 'tier', operator: 'In', values: [this.pick(TIERS), this.pick(TIERS)] }] },
        namespaceSelector: { requirements: [{ key: 'team', operator: 'In', values: [`t${this.int(TEAMS)}`] }, { key: 'env', operator: 'NotIn', values: ['dev'] }] },
      };
    }
    if (r < 0.75) return { kind: 'pods', podSelector: { requirements: [] }, namespaceSelector: { requirements: [{ key: 'purpose', operator: 'In', values: ['monitoring'] }] } };
    if (r < 0.85) return { kind: 'pods', podSelector: { requirements: [{ key: 'access', operator: 'Exists', values: [] }] }, namespaceSelector: null };
    const a = this.int(200);
    return { kind: 'ipBlock', cidr: `172.${16 + (a & 15)}.0.0/16`, except: [`172.${16 + (a & 15)}.${this.int(256)}.0/24`] };
  }

  private rule(): PolicyRule {
    // A rule without peers takes named ports as often as any other: towards "every peer", an egress
    // named port expands to every pod of the cluster declaring the name (bench/engine-compile.ts
    // reports that expansion as its own row).
    const peers = this.random() < 0.1 ? null : Array.from({ length: 1 + this.int(2) }, () => this.peer());
    return { peers, ports: this.random() < 0.15 ? null : Array.from({ length: 1 + this.int(2) }, () => this.port()) };
  }

  policy(namespace: string): PolicyState {
    const n = this.policyCounter++;
    const r = this.random();
    const defaultDeny = r < 0.1;
    const egress = !defaultDeny && r > 0.75;
    const rules = defaultDeny ? [] : Array.from({ length: 1 + this.int(3) }, () => this.rule());
    return {
      namespace,
      name: `policy-${n}`,
      podSelector: defaultDeny ? { requirements: [] } : this.appSelector(),
      ingressIsolation: !egress || this.random() < 0.3,
      egressIsolation: egress,
      ingress: egress ? [] : rules,
      egress: egress ? rules : [],
    };
  }

  cluster(): SyntheticCluster {
    const o = this.options;
    const namespaces = Array.from({ length: o.namespaces }, (_, i) => this.namespace(i));
    const nodes = Array.from({ length: o.nodes }, (_, i) => this.nodeName(i));
    const pods = Array.from({ length: o.pods }, (_, i) => this.pod(this.namespaceName(i % o.namespaces), this.nodeName(this.int(o.nodes))));
    const policies = Array.from({ length: o.policies }, () => this.policy(this.namespaceName(this.int(o.namespaces))));
    return { namespaces, pods, policies, nodes };
  }
}

export function clusterEvents(cluster: SyntheticCluster): ClusterEvent[] {
  return eventsBetween(null, { ...cluster, ignored: [] });
}

/** The node with the most local pods: the worst case for one agent. */
export function busiestNode(cluster: SyntheticCluster): string {
  const perNode = new Map<string, number>();
  for (const p of cluster.pods) perNode.set(p.nodeName, (perNode.get(p.nodeName) ?? 0) + 1);
  return [...perNode].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'node-0';
}

function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** The issues' reference scale (100,000 pods, 5,000 nodes, 2,000 namespaces, 10,000 policies), overridable by BENCH_* variables. */
export function referenceCluster(): { generator: SyntheticGenerator; cluster: SyntheticCluster; events: ClusterEvent[]; node: string; options: SyntheticOptions } {
  const options: SyntheticOptions = {
    seed: 42,
    pods: envNumber('BENCH_PODS', 100_000),
    nodes: envNumber('BENCH_NODES', 5_000),
    namespaces: envNumber('BENCH_NAMESPACES', 2_000),
    policies: envNumber('BENCH_POLICIES', 10_000),
  };
  const generator = new SyntheticGenerator(options);
  const cluster = generator.cluster();
  return { generator, cluster, events: clusterEvents(cluster), node: busiestNode(cluster), options };
}
