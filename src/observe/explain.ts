// Explain one connection: allowed or denied, and why. Every rule of the policies that isolate the pod
// (the destination for ingress, the source for egress) is read as written against this one
// connection: a rule with nothing missing allows it; for a denial, the rules that came closest say
// what they would need (a label on the peer pod or its namespace, an address in a block, a port).
// That reading costs a few policies, whatever the cluster's size (what a running agent uses). Given
// compiled rule tables (TableOf), the verdict and the allowing rule come from them instead, the tables
// the dataplane programs; the tests check that both ways agree with probe on every conformance case.
import type { Direction, IpFamily, LabelRequirement, PodState, PolicyPeer, PolicyRule, PolicyState, PortSpec, Protocol } from '../api';
import { NodeCompiler, objectKey, selectorMatches } from '../compiler';
import { hasFinished } from '../parse';
import { parseIp, peerContainsIp } from '../net/ip';
import { RuleState } from '../ruletable';
import { eventsBetween } from '../source';
import type { ClusterObjects } from '../source';

export interface ExplainQuery {
  /** "namespace/name" of a pod, or an address. */
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** For dual-stack pods: default IPv4 when both ends have one. */
  readonly family?: IpFamily;
}

export interface ExplainEndpoint {
  readonly ip: string;
  readonly pod?: string;
}

export interface RuleDistance {
  readonly rule: string;
  /** What the rule would need to allow this connection; empty when it allows it as written. */
  readonly needs: readonly string[];
}

export interface SideExplanation {
  readonly direction: Direction;
  /** The pod whose policies decide this side. */
  readonly pod: string;
  readonly isolatedBy: readonly string[];
  readonly allowed: boolean;
  /** The rule that allows it (when isolated and allowed). */
  readonly rule?: string;
  /** For a denial: the rules that came closest, fewest needs first (at most 3). */
  readonly closest: readonly RuleDistance[];
  readonly text: string;
}

export interface Explanation {
  readonly from: ExplainEndpoint;
  readonly to: ExplainEndpoint;
  readonly protocol: Protocol;
  readonly port: number;
  readonly allowed: boolean;
  /** null when that side is not a pod (nothing of ours enforces it). */
  readonly egress: SideExplanation | null;
  readonly ingress: SideExplanation | null;
  readonly summary: string;
}

export class ExplainError extends Error {}

/** What explain looks up in the cluster (ClusterIndex implements it for a running agent). */
export interface ExplainCluster {
  pod(key: string): PodState | undefined;
  /** The pod holding an address, if any. */
  podOf(ip: string): string | null;
  namespaceLabels(name: string): Readonly<Record<string, string>> | undefined;
  /** The policies of a namespace. */
  policiesIn(namespace: string): Iterable<PolicyState>;
}

/** An ExplainCluster over a listing (offline). */
export function clusterView(objects: ClusterObjects): ExplainCluster {
  const pods = new Map(objects.pods.map((p) => [objectKey(p), p]));
  const byIp = new Map<string, PodState>();
  for (const p of objects.pods) for (const ip of p.ips) if (!byIp.has(ip) || hasFinished(byIp.get(ip) as PodState)) byIp.set(ip, p);
  const namespaces = new Map(objects.namespaces.map((n) => [n.name, n.labels]));
  const policies = new Map<string, PolicyState[]>();
  for (const p of objects.policies) policies.set(p.namespace, [...(policies.get(p.namespace) ?? []), p]);
  return {
    pod: (key) => pods.get(key),
    podOf: (ip) => {
      const p = byIp.get(ip);
      return p === undefined ? null : objectKey(p);
    },
    namespaceLabels: (name) => namespaces.get(name),
    policiesIn: (namespace) => policies.get(namespace) ?? [],
  };
}

/** A node's compiled rule table, built on demand from the objects. */
export type TableOf = (node: string) => RuleState;

export function compiledTables(objects: ClusterObjects): TableOf {
  const cache = new Map<string, RuleState>();
  const events = eventsBetween(null, objects);
  return (node) => {
    let table = cache.get(node);
    if (table === undefined) {
      const compiler = new NodeCompiler(node);
      for (const e of events) compiler.apply(e);
      table = RuleState.of(compiler.elements());
      cache.set(node, table);
    }
    return table;
  };
}

function ipOfFamily(pod: PodState, family: IpFamily): string | undefined {
  return pod.ips.find((ip) => parseIp(ip)?.family === family);
}

interface Resolved {
  readonly endpoint: ExplainEndpoint;
  readonly pod: PodState | null;
}

/** An address as given (and the pod holding it, if any), or a pod's address of `family` (null: it has none). */
function resolve(text: string, cluster: ExplainCluster, family: IpFamily, which: string): Resolved | null {
  const ip = parseIp(text);
  if (ip !== null) {
    if (ip.family !== family) return null;
    const key = cluster.podOf(text);
    const pod = key === null ? undefined : cluster.pod(key);
    return { endpoint: pod === undefined ? { ip: text } : { ip: text, pod: objectKey(pod) }, pod: pod ?? null };
  }
  const pod = cluster.pod(text);
  if (pod === undefined) throw new ExplainError(`${which} ${JSON.stringify(text)}: no such pod (give namespace/name or an address)`);
  const address = ipOfFamily(pod, family);
  return address === undefined ? null : { endpoint: { ip: address, pod: text }, pod };
}

function requirementNeed(r: LabelRequirement): string {
  switch (r.operator) {
    case 'In':
      return r.values.length === 1 ? `label ${r.key}=${r.values[0] ?? ''}` : `label ${r.key} in (${r.values.join(',')})`;
    case 'NotIn':
      return `label ${r.key} not in (${r.values.join(',')})`;
    case 'Exists':
      return `label ${r.key}`;
    case 'DoesNotExist':
      return `no label ${r.key}`;
  }
}

function failing(requirements: readonly LabelRequirement[], labels: Readonly<Record<string, string>>): LabelRequirement[] {
  return requirements.filter((r) => !selectorMatches({ requirements: [r] }, labels));
}

interface Context {
  readonly policy: PolicyState;
  /** The pod whose policy this is (destination for ingress, source for egress). */
  readonly self: PodState;
  readonly remote: ExplainEndpoint;
  readonly remotePod: PodState | null;
  readonly cluster: ExplainCluster;
  readonly direction: Direction;
  readonly protocol: Protocol;
  readonly port: number;
}

function peerNeeds(peer: PolicyPeer, c: Context): string[] {
  if (peer.kind === 'ipBlock') {
    const ip = parseIp(c.remote.ip);
    const inBlock = ip !== null && peerContainsIp(peer.cidr, ip) && !peer.except.some((e) => peerContainsIp(e, ip));
    return inBlock ? [] : [`the peer's address in ${peer.cidr}${peer.except.length > 0 ? ` except ${peer.except.join(',')}` : ''}`];
  }
  const rp = c.remotePod;
  if (rp === null) return [`a pod as the peer (${c.remote.ip} is not one)`];
  const out: string[] = [];
  const peerKey = objectKey(rp);
  if (peer.namespaceSelector === null) {
    if (rp.namespace !== c.policy.namespace) out.push(`the peer in namespace ${c.policy.namespace}`);
  } else {
    const labels = c.cluster.namespaceLabels(rp.namespace) ?? {};
    for (const r of failing(peer.namespaceSelector.requirements, labels)) out.push(`${requirementNeed(r)} on namespace ${rp.namespace}`);
  }
  for (const r of failing(peer.podSelector.requirements, rp.labels)) out.push(`${requirementNeed(r)} on pod ${peerKey}`);
  return out;
}

function portNeeds(spec: PortSpec, c: Context): string[] {
  const want = `${c.protocol}/${c.port}`;
  switch (spec.kind) {
    case 'allPorts':
      return spec.protocol === c.protocol ? [] : [`protocol ${c.protocol} (the rule allows ${spec.protocol})`];
    case 'number': {
      const ok = spec.protocol === c.protocol && c.port >= spec.port && c.port <= spec.endPort;
      const has = spec.endPort === spec.port ? `${spec.protocol}/${spec.port}` : `${spec.protocol}/${spec.port}-${spec.endPort}`;
      return ok ? [] : [`port ${want} in the rule (it allows ${has})`];
    }
    case 'named': {
      // A named port is the port of that name on the pod receiving the connection.
      const receiver = c.direction === 'ingress' ? c.self : c.remotePod;
      const found = receiver?.ports.find((p) => p.name === spec.name && p.protocol === spec.protocol);
      if (found !== undefined && spec.protocol === c.protocol && found.port === c.port) return [];
      const where = receiver === null || receiver === undefined ? 'the peer, which is not a pod' : `pod ${objectKey(receiver)}`;
      return [`port ${want} named ${spec.name} on ${where} (the rule allows ${spec.protocol}/${spec.name}${found === undefined ? ', which it does not declare' : `, which is ${found.port}`})`];
    }
  }
}

function ruleNeeds(rule: PolicyRule, c: Context): string[] {
  const best = <T>(items: readonly T[] | null, f: (x: T) => string[]): string[] => {
    if (items === null) return [];
    let min: string[] | null = null;
    for (const x of items) {
      const n = f(x);
      if (min === null || n.length < min.length) min = n;
    }
    return min ?? ['a peer (the rule lists none that can match)'];
  };
  return [...best(rule.peers, (p) => peerNeeds(p, c)), ...best(rule.ports, (s) => portNeeds(s, c))];
}

/** Pods policies apply to, and that policies' pod selectors can select: not host-network, not finished. */
function isPolicyPod(p: PodState): boolean {
  return !p.hostNetwork && !hasFinished(p);
}

/** Each rule of the policies isolating `self` in `direction`, with what it lacks for this connection (rules in name order). */
function ruleDistances(direction: Direction, self: PodState, remote: ExplainEndpoint, remotePod: PodState | null, q: ExplainQuery, cluster: ExplainCluster, isolatedBy: readonly string[]): RuleDistance[] {
  const policies = new Map<string, PolicyState>();
  for (const key of isolatedBy) {
    const namespace = key.slice(0, key.indexOf('/'));
    for (const p of cluster.policiesIn(namespace)) policies.set(objectKey(p), p);
  }
  const peer = remotePod !== null && isPolicyPod(remotePod) ? remotePod : null;
  const distances: RuleDistance[] = [];
  for (const key of isolatedBy) {
    const policy = policies.get(key);
    if (policy === undefined) continue;
    const c: Context = { policy, self, remote, remotePod: peer, cluster, direction, protocol: q.protocol, port: q.port };
    policy[direction].forEach((rule, i) => distances.push({ rule: `${key}/${direction}/${i}`, needs: ruleNeeds(rule, c) }));
  }
  return distances.sort((a, b) => (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0));
}

/** The verdict read from the policies as written: isolating policies, and the first rule lacking nothing. */
function modelVerdict(direction: Direction, self: PodState, remote: ExplainEndpoint, remotePod: PodState | null, q: ExplainQuery, cluster: ExplainCluster): { allowed: boolean; rule?: string; isolatedBy: string[] } {
  const isolatedBy = !isPolicyPod(self)
    ? []
    : [...cluster.policiesIn(self.namespace)]
        .filter((p) => (direction === 'ingress' ? p.ingressIsolation : p.egressIsolation) && selectorMatches(p.podSelector, self.labels))
        .map(objectKey)
        .sort();
  if (isolatedBy.length === 0) return { allowed: true, isolatedBy };
  const match = ruleDistances(direction, self, remote, remotePod, q, cluster, isolatedBy).find((d) => d.needs.length === 0);
  return match === undefined ? { allowed: false, isolatedBy } : { allowed: true, rule: match.rule, isolatedBy };
}

function explainSide(direction: Direction, self: PodState, remote: ExplainEndpoint, remotePod: PodState | null, q: ExplainQuery, cluster: ExplainCluster, tableOf: TableOf | null): SideExplanation {
  const pod = objectKey(self);
  const remoteIp = parseIp(remote.ip);
  if (remoteIp === null) throw new ExplainError(`bad address ${remote.ip}`);
  const v = tableOf === null ? modelVerdict(direction, self, remote, remotePod, q, cluster) : tableOf(self.nodeName).decide(pod, direction, remoteIp, q.protocol, q.port);
  const target = `${q.protocol}/${q.port}`;
  const peerText = remote.pod === undefined ? remote.ip : `${remote.pod} (${remote.ip})`;
  if (v.isolatedBy.length === 0) return { direction, pod, isolatedBy: [], allowed: true, closest: [], text: `${direction} of ${pod}: not isolated (no policy selects it for ${direction})` };
  if (v.allowed) {
    return { direction, pod, isolatedBy: v.isolatedBy, allowed: true, ...(v.rule === undefined ? {} : { rule: v.rule }), closest: [], text: `${direction} of ${pod}: isolated by ${v.isolatedBy.join(', ')}; allowed by rule ${v.rule ?? '?'}` };
  }
  const distances = ruleDistances(direction, self, remote, remotePod, q, cluster, v.isolatedBy);
  distances.sort((a, b) => a.needs.length - b.needs.length || (a.rule < b.rule ? -1 : 1));
  const closest = distances.slice(0, 3);
  const none = distances.length === 0 ? 'their rules allow nothing in this direction' : `no rule allows ${peerText} on ${target}`;
  return { direction, pod, isolatedBy: v.isolatedBy, allowed: false, closest, text: `${direction} of ${pod}: isolated by ${v.isolatedBy.join(', ')}; ${none}` };
}

/**
 * Allowed or denied, and why, for a new connection from `q.from` to `q.to` on q.protocol/q.port;
 * with `tableOf`, the verdict comes from the compiled rule tables, else from the policies as written.
 */
export function explainConnection(objects: ClusterObjects | ExplainCluster, q: ExplainQuery, tableOf: TableOf | null = null): Explanation {
  const cluster = 'policiesIn' in objects ? objects : clusterView(objects);
  const fixed = q.family ?? parseIp(q.from)?.family ?? parseIp(q.to)?.family;
  let ends: [Resolved, Resolved] | null = null;
  for (const family of fixed !== undefined ? [fixed] : ([4, 6] as const)) {
    const f = resolve(q.from, cluster, family, 'from');
    const t = resolve(q.to, cluster, family, 'to');
    if (f !== null && t !== null) {
      ends = [f, t];
      break;
    }
  }
  if (ends === null) throw new ExplainError(`${q.from} and ${q.to} have no address of the same family${fixed === undefined ? '' : ` (IPv${fixed})`}`);
  const [from, to] = ends;
  const base = { from: from.endpoint, to: to.endpoint, protocol: q.protocol, port: q.port };
  const what = `${q.protocol}/${q.port} from ${from.endpoint.pod ?? from.endpoint.ip} to ${to.endpoint.pod ?? to.endpoint.ip}`;
  if (from.pod !== null && to.pod !== null && objectKey(from.pod) === objectKey(to.pod)) {
    return { ...base, allowed: true, egress: null, ingress: null, summary: `${what}: allowed (loopback: a pod reaching itself never leaves its network namespace)` };
  }
  const egress = from.pod !== null ? explainSide('egress', from.pod, to.endpoint, to.pod, q, cluster, tableOf) : null;
  const ingress = to.pod !== null ? explainSide('ingress', to.pod, from.endpoint, from.pod, q, cluster, tableOf) : null;
  const allowed = (egress?.allowed ?? true) && (ingress?.allowed ?? true);
  return { ...base, allowed, egress, ingress, summary: `${what}: ${allowed ? 'allowed' : 'denied'}` };
}

export function formatExplanation(e: Explanation): string {
  const out = [e.summary.replace(/: (allowed|denied)/, (_m, v: string) => `: ${v.toUpperCase()}`)];
  for (const side of [e.egress, e.ingress]) {
    if (side === null) continue;
    out.push(`  ${side.text}`);
    for (const d of side.closest) out.push(`    closest: ${d.rule} ${d.needs.length === 0 ? 'matches as written' : `needs ${d.needs.join(' and ')}`}`);
  }
  if (e.egress === null && e.from.pod === undefined) out.push(`  egress: ${e.from.ip} is not a pod; no policy of ours applies to it`);
  if (e.ingress === null && e.to.pod === undefined) out.push(`  ingress: ${e.to.ip} is not a pod; no policy of ours applies to it`);
  return `${out.join('\n')}\n`;
}
