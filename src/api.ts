// The contracts between the stages of the pipeline:
//   source -> cluster state -> compiler -> rule table -> dataplane -> kernel
// Each stage depends on these types only, never on another stage's internals.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];
export type IpFamily = 4 | 6;

export type Labels = Readonly<Record<string, string>>;

/** Names a namespaced object; used in every error and every reason we print. */
export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

/**
 * "namespace/name": the key of a pod or a policy in every map and rule-table element. It cannot be
 * ambiguous because src/parse admits only names the API server admits: a namespace is a DNS-1123 label
 * and a pod or policy name a DNS-1123 subdomain, so neither part contains '/'.
 */
export function objectKey(ref: ObjectRef): string {
  return `${ref.namespace}/${ref.name}`;
}

// ---------------------------------------------------------------------------
// Cluster model: only what enforcement needs, validated once on the way in.
// ---------------------------------------------------------------------------

export interface NamespaceState {
  readonly name: string;
  readonly labels: Labels;
}

export interface ContainerPort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface PodState {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly labels: Labels;
  readonly nodeName: string;
  readonly hostNetwork: boolean;
  readonly phase: string;
  /** Canonical text form, IPv4 and IPv6, from status.podIPs (or status.podIP). */
  readonly ips: readonly string[];
  readonly ports: readonly ContainerPort[];
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: readonly string[];
}

/** A validated LabelSelector: matchLabels folded into In requirements. Empty = everything. */
export interface Selector {
  readonly requirements: readonly LabelRequirement[];
}

export type PolicyPeer =
  | { readonly kind: 'pods'; readonly podSelector: Selector; readonly namespaceSelector: Selector | null }
  | { readonly kind: 'ipBlock'; readonly cidr: string; readonly except: readonly string[] };

export type PortSpec =
  | { readonly kind: 'number'; readonly protocol: Protocol; readonly port: number; readonly endPort: number }
  | { readonly kind: 'named'; readonly protocol: Protocol; readonly name: string }
  | { readonly kind: 'allPorts'; readonly protocol: Protocol };

export interface PolicyRule {
  /** null: the rule has no peers, so it matches every peer. */
  readonly peers: readonly PolicyPeer[] | null;
  /** null: the rule has no ports, so it matches every port of every protocol. */
  readonly ports: readonly PortSpec[] | null;
}

export interface PolicyState {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: Selector;
  readonly ingressIsolation: boolean;
  readonly egressIsolation: boolean;
  readonly ingress: readonly PolicyRule[];
  readonly egress: readonly PolicyRule[];
  /** 'audit' (annotation netpol-agent.io/enforcement: audit): evaluated and logged, not enforced. Absent: enforced. */
  readonly enforcement?: 'audit';
}

export type ClusterEvent =
  | { readonly type: 'upsert'; readonly kind: 'Namespace'; readonly object: NamespaceState }
  | { readonly type: 'delete'; readonly kind: 'Namespace'; readonly name: string }
  | { readonly type: 'upsert'; readonly kind: 'Pod'; readonly object: PodState }
  | { readonly type: 'delete'; readonly kind: 'Pod'; readonly ref: ObjectRef }
  | { readonly type: 'upsert'; readonly kind: 'NetworkPolicy'; readonly object: PolicyState }
  | { readonly type: 'delete'; readonly kind: 'NetworkPolicy'; readonly ref: ObjectRef };

// ---------------------------------------------------------------------------
// Rule table: the compiled, per-node form. It is a set of elements; a change is a delta of elements.
// Everything is resolved: selectors became addresses, named ports became numbers, ipBlock excepts
// became CIDRs that do not overlap them. Peers are held once per rule and bound to local pods, so a
// peer pod joining a rule is one element however many local pods the rule applies to.
//
//   allowed(pod, direction, remote, port) <=> pod is isolated in that direction and for some rule R
//     bound to it:  peer(R, p, null) with remote in p and bind(pod, R, port') with port in port'
//              or   peer(R, p, port') with remote in p and port in port'   (egress named ports)
// ---------------------------------------------------------------------------

/** A remote peer: every address, or a CIDR (a pod address is written without a prefix). */
export type PeerMatch = 'any' | string;

/** A port match: every port of every protocol, or one protocol and an inclusive range. */
export type PortMatch = 'any' | { readonly protocol: Protocol; readonly from: number; readonly to: number };

/** A local pod owns this address on this node. */
export interface PodAddressElement {
  readonly kind: 'address';
  readonly pod: string; // "namespace/name"
  readonly ip: string;
}

/** The local pod is isolated for this direction by this policy (it selects the pod and has that type). */
export interface IsolationElement {
  readonly kind: 'isolation';
  readonly pod: string;
  readonly direction: Direction;
  readonly policy: string; // "namespace/name"
}

/**
 * The rule applies to the local pod. port null: the binding itself (every bound rule has one);
 * otherwise a port the rule allows for this pod (numbers, ranges, and ingress named ports resolved
 * against this pod's container ports).
 */
export interface BindElement {
  readonly kind: 'bind';
  readonly pod: string;
  readonly direction: Direction;
  /** "namespace/policy/direction/index". */
  readonly rule: string;
  readonly port: PortMatch | null;
}

/**
 * A remote peer of the rule. port null: on the ports bound to each local pod; otherwise on this port
 * only (an egress named port, resolved against the peer pod's own container ports).
 */
export interface PeerElement {
  readonly kind: 'peer';
  readonly rule: string;
  readonly direction: Direction;
  readonly peer: PeerMatch;
  readonly port: PortMatch | null;
}

export type RuleTableElement = PodAddressElement | IsolationElement | BindElement | PeerElement;

export interface RuleTableDelta {
  readonly added: readonly RuleTableElement[];
  readonly removed: readonly RuleTableElement[];
}

/** The readable, grouped view of one node's rule table (what /rules and probe show). */
export interface RuleTable {
  readonly node: string;
  readonly pods: readonly LocalPodRules[];
  readonly rules: readonly RulePeers[];
}

export interface LocalPodRules {
  readonly pod: string;
  readonly ips: readonly string[];
  readonly ingress: DirectionRules;
  readonly egress: DirectionRules;
}

export interface DirectionRules {
  /** Policies that isolate the pod in this direction; empty: not isolated, everything is allowed. */
  readonly isolatedBy: readonly string[];
  /** The rules bound to the pod, with the ports they allow it. */
  readonly rules: readonly { readonly rule: string; readonly ports: readonly PortMatch[] }[];
}

export interface RulePeers {
  readonly rule: string;
  readonly direction: Direction;
  /** Peers on the bound ports. */
  readonly peers: readonly PeerMatch[];
  /** Peers on a port of their own (egress named ports), grouped by port. */
  readonly peersByPort: readonly { readonly port: PortMatch; readonly peers: readonly PeerMatch[] }[];
}

// ---------------------------------------------------------------------------
// Sources of cluster state: the Kubernetes API (list + watch) or local manifest files. A source turns
// what it reads into ClusterEvents; it never talks to the compiler or the dataplane.
// ---------------------------------------------------------------------------

export type ObjectKind = 'Namespace' | 'Pod' | 'NetworkPolicy';

/** Where a source delivers what it reads. Calls come in the order things happened. */
export interface SourceSink {
  /** A batch of changes (upserts and deletes of valid objects). */
  events(batch: readonly ClusterEvent[]): void;
  /**
   * An object the source read but cannot turn into state (it fails validation). `raw` is the object as
   * read, so the agent can enforce it fail-closed; a later upsert or delete of the same object ends it.
   */
  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void;
  /** The first complete listing of all three kinds has been delivered through events(); called once. */
  synced(): void;
  /**
   * Something about the source an operator should read (a watch failed, a file does not parse, an
   * object is ignored); it is logged. Whether the source reads is health()'s business.
   */
  problem(message: string, cause?: unknown): void;
  /**
   * The current level of one part of the source (a kind of the Kubernetes API, the datastore file):
   * null when it reads, or why it does not. A part reports again whenever its level may have changed,
   * so a part that reads again is healthy again; repeating a level is harmless.
   */
  health(part: string, failure: string | null): void;
}

export interface ClusterSource {
  /** Starts reading; events flow to the sink until stop(). */
  start(sink: SourceSink): void;
  /** Stops reading (watches closed, file watchers removed); delivers nothing afterwards. */
  stop(): Promise<void>;
}
