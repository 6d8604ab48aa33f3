// The nftables layout of one node, as a plain "view" of chains, sets and maps that both the desired
// state and the kernel's listing are turned into, so that one diff serves start-up, incremental
// updates and repair.
//
//   table inet netpol_agent
//     chain forward  (hook forward)  ct established,related accept; ICMPv6 ND accept;
//                                    ip saddr vmap @egress_v4; ip6 saddr vmap @egress_v6;
//                                    ip daddr vmap @ingress_v4; ip6 daddr vmap @ingress_v6
//     chain input    (hook input)    the same egress part: an isolated pod reaches its own node
//                                    only where an egress rule allows the node's address
//     map  ingress_v4/_v6, egress_v4/_v6   local pod address : jump <group chain>
//     chain in_<hash> / eg_<hash>    one per group of local pods that have the same rules bound;
//                                    a bounded number of set lookups whatever the number of policies,
//                                    one per non-empty set, hash sets of exact keys first:
//        addr . l4proto . dport @..._px4/6 | addr @..._ax4/6            (hash: one address, one port)
//        addr . l4proto . dport @..._pp4/6 | addr @..._pa4/6 | l4proto . dport @..._ap  (interval:
//                                                                   blocks, ranges, any peer)
//        addr . l4proto . dport @..._pr4/6        (interval: one pod address . a port range; last)
//          -> counter allow
//        with drop logging: ct state new limit rate R/second log prefix "<chain>" group G
//        otherwise counter drop
// Exact keys live in hash sets so that a peer pod coming or going is one independent element (an
// element change in a large interval set costs the kernel tens of ms); interval sets keep CIDRs and
// ranges, flattened into disjoint elements. A concatenated interval set's lookup walks bitmaps as
// long as its element count, so pod addresses on port ranges (one element per pod: the large ones)
// get their own set, looked up last: a packet admitted by a block, or by a hash set, never walks it.
// Every allowing rule and the drop carry an anonymous counter: one per group chain rule, since a set
// element can stand for several policy rules (flattening merges them), and the counter of a lookup
// counts every element of its set.
// Ingress allows with accept; egress with return, so a same-node packet goes on to the
// destination's ingress check in the same pass.
import { createHash } from 'node:crypto';
import type { Direction, IpFamily } from '../api';
import type { KeyParts } from './flatten';
import type { BaseChainSpec, ListedBase, RuleToken, SetDatatype, SetFlag } from './nft';
import type { ChainSnapshot, RuleCounter } from './nft';
import { accept, counter, ctState, drop, icmpv6NeighborDiscovery, limit, log, matchSet, ret, vmap } from './nft';

export const DEFAULT_TABLE = 'netpol_agent';

/** A rule as text (how it is compared) and, for rules we want, the tokens that write it. */
export interface RuleBody {
  readonly text: string;
  readonly tokens: readonly RuleToken[] | null;
}

/** A chain; `base` as listed (whatever hook someone gave it) or, in a desired view, as we write it. */
export interface ChainView<Base = ListedBase> {
  readonly base?: Base;
  readonly rules: readonly RuleBody[];
}

function rule(...tokens: RuleToken[]): RuleBody {
  return { text: tokens.map((t) => t.text).join(' '), tokens };
}

export interface SetView<Type extends string = string, Flag extends string = string> {
  readonly type: readonly Type[];
  readonly flags: readonly Flag[];
  /** Element identity (key parts joined) -> key parts, and for maps the chain it jumps to. */
  readonly elements: ReadonlyMap<string, { readonly key: KeyParts; readonly jump?: string }>;
  /** A verdict map (a listed map of another value type is a map with `foreign` set). */
  readonly map: boolean;
  /** In a listing: what this set carries that ours never do; it is then replaced. */
  readonly foreign?: string;
}

/** Chains and sets of a table: as listed (anything someone left there) or as we want them (DesiredView). */
export interface KernelView<Base = ListedBase, Set = SetView> {
  readonly chains: Map<string, ChainView<Base>>;
  readonly sets: Map<string, Set>;
  /** Objects of kinds we never create, listed as "kind name" (see TableSnapshot.foreign). */
  readonly foreign?: readonly { readonly type: string; readonly name: string }[];
}

export type DesiredView = KernelView<BaseChainSpec, SetView<SetDatatype, SetFlag>>;

const FILTER_PRIORITY = 0;
export const POD_MAPS: readonly { name: string; direction: Direction; family: IpFamily }[] = [
  { name: 'egress_v4', direction: 'egress', family: 4 },
  { name: 'egress_v6', direction: 'egress', family: 6 },
  { name: 'ingress_v4', direction: 'ingress', family: 4 },
  { name: 'ingress_v6', direction: 'ingress', family: 6 },
];

export function elementId(key: KeyParts): string {
  return key.join(' . ');
}

function egressDispatch(): RuleBody[] {
  return [rule(vmap(['ip saddr'], 'egress_v4')), rule(vmap(['ip6 saddr'], 'egress_v6'))];
}

/** The chains that never change: hooks, conntrack, and the dispatch of local pods to their group. */
export function staticChains(): Map<string, ChainView<BaseChainSpec>> {
  const head = (): RuleBody[] => [rule(ctState('established', 'related'), accept()), rule(icmpv6NeighborDiscovery(), accept())];
  const base = (hook: 'forward' | 'input'): BaseChainSpec => ({ type: 'filter', hook, priority: FILTER_PRIORITY, policy: 'accept' });
  return new Map<string, ChainView<BaseChainSpec>>([
    ['forward', { base: base('forward'), rules: [...head(), ...egressDispatch(), rule(vmap(['ip daddr'], 'ingress_v4')), rule(vmap(['ip6 daddr'], 'ingress_v6'))] }],
    ['input', { base: base('input'), rules: [...head(), ...egressDispatch()] }],
  ]);
}

/** A pod map; `elements`: local pod address -> { key: [address], jump: its group chain }. */
export function podMapView(family: IpFamily, elements: ReadonlyMap<string, { readonly key: KeyParts; readonly jump: string }>): SetView<SetDatatype, SetFlag> {
  return { type: [family === 4 ? 'ipv4_addr' : 'ipv6_addr'], flags: [], elements, map: true };
}

/** Stable across restarts: the same bound rules give the same chain, so a restart rewrites nothing. */
export function groupName(direction: Direction, signature: string): string {
  return `${direction === 'ingress' ? 'in' : 'eg'}_${createHash('sha256').update(signature).digest('hex').slice(0, 16)}`;
}

/** Hash sets of exact keys (one address; one port or every port), looked up first. */
export type ExactSetSuffix = 'px4' | 'px6' | 'ax4' | 'ax6';
/** Interval sets of disjoint elements: CIDRs, ranges, any peer. */
export type IntervalSetSuffix = 'pp4' | 'pp6' | 'pa4' | 'pa6' | 'ap' | 'pr4' | 'pr6';
export type GroupSetSuffix = ExactSetSuffix | IntervalSetSuffix;
export const INTERVAL_SET_SUFFIXES: readonly IntervalSetSuffix[] = ['pp4', 'pp6', 'pa4', 'pa6', 'ap', 'pr4', 'pr6'];

/** What a group allows, as the elements of each of its sets (element id -> key parts). */
export interface GroupContent {
  readonly allowAll: boolean;
  readonly sets: Readonly<Record<GroupSetSuffix, ReadonlyMap<string, { readonly key: KeyParts }>>>;
}

type LookupFields = Parameters<typeof matchSet>[0];
const peerPortFields = (family: IpFamily) => (d: Direction): LookupFields => [peerField(family, d), 'meta l4proto', 'th dport'];
const peerFields = (family: IpFamily) => (d: Direction): LookupFields => [peerField(family, d)];

function peerField(family: IpFamily, d: Direction): LookupFields[number] {
  if (family === 4) return d === 'ingress' ? 'ip saddr' : 'ip daddr';
  return d === 'ingress' ? 'ip6 saddr' : 'ip6 daddr';
}

const PEER_PORT_V4: SetDatatype[] = ['ipv4_addr', 'inet_proto', 'inet_service'];
const PEER_PORT_V6: SetDatatype[] = ['ipv6_addr', 'inet_proto', 'inet_service'];

/** In lookup order: the hash sets first (one hash lookup), then the interval sets, the largest last. */
const GROUP_SETS: readonly { suffix: GroupSetSuffix; type: SetDatatype[]; fields: (d: Direction) => LookupFields }[] = [
  { suffix: 'px4', type: PEER_PORT_V4, fields: peerPortFields(4) },
  { suffix: 'px6', type: PEER_PORT_V6, fields: peerPortFields(6) },
  { suffix: 'ax4', type: ['ipv4_addr'], fields: peerFields(4) },
  { suffix: 'ax6', type: ['ipv6_addr'], fields: peerFields(6) },
  { suffix: 'pp4', type: PEER_PORT_V4, fields: peerPortFields(4) },
  { suffix: 'pp6', type: PEER_PORT_V6, fields: peerPortFields(6) },
  { suffix: 'pa4', type: ['ipv4_addr'], fields: peerFields(4) },
  { suffix: 'pa6', type: ['ipv6_addr'], fields: peerFields(6) },
  { suffix: 'ap', type: ['inet_proto', 'inet_service'], fields: () => ['meta l4proto', 'th dport'] },
  { suffix: 'pr4', type: PEER_PORT_V4, fields: peerPortFields(4) },
  { suffix: 'pr6', type: PEER_PORT_V6, fields: peerPortFields(6) },
];

export const GROUP_SET_SUFFIXES: readonly GroupSetSuffix[] = GROUP_SETS.map((s) => s.suffix);

export function groupSetName(group: string, suffix: GroupSetSuffix): string {
  return `${group}_${suffix}`;
}

/**
 * Dropped new connections sent to nfnetlink_log group `group`, prefixed with the group chain's name,
 * at most `rate` per second and group chain (bursts of `burst`), so a flood cannot swamp the reader.
 */
export interface DropLogging {
  readonly group: number;
  readonly rate: number;
  readonly burst: number;
}

/** Log prefix of an audit table's group chain: what it logs would be dropped, and is not. */
export const AUDIT_LOG_PREFIX = 'audit/';

/**
 * The chain and sets of one group, into `view`. Every set exists, but only a non-empty one has a
 * lookup rule: a set turning (non-)empty rewrites the chain in the same transaction as its elements.
 * In an audit table (`audit`) the chain logs and counts what it would drop and lets it go on to the
 * enforcing table.
 */
export function addGroupView(view: DesiredView, name: string, direction: Direction, content: GroupContent, logging: DropLogging | null = null, audit = false): void {
  const allow = (): RuleToken => (direction === 'ingress' ? accept() : ret());
  const rules: RuleBody[] = [];
  if (content.allowAll) rules.push(rule(counter(), allow()));
  for (const s of GROUP_SETS) {
    const setName = groupSetName(name, s.suffix);
    const elements = content.sets[s.suffix];
    const interval = (INTERVAL_SET_SUFFIXES as readonly string[]).includes(s.suffix);
    view.sets.set(setName, { type: s.type, flags: interval ? ['interval'] : [], elements, map: false });
    if (elements.size > 0) rules.push(rule(matchSet(s.fields(direction), setName), counter(), allow()));
  }
  if (logging !== null) rules.push(rule(ctState('new'), limit(logging.rate, 'second', logging.burst), log({ prefix: audit ? `${AUDIT_LOG_PREFIX}${name}` : name, group: logging.group })));
  rules.push(audit ? rule(counter()) : rule(counter(), drop()));
  view.chains.set(name, { rules });
}

export type GroupRuleRole = 'allowAll' | GroupSetSuffix | 'drop';

/** What a group chain's counters hold, by rule role (as listed; a role the chain lacks is absent). */
export type GroupCounters = Partial<Record<GroupRuleRole, RuleCounter>>;

/** Reads the counters of a listed group chain, telling its rules apart by what they do. */
export function groupCounters(chain: ChainSnapshot): GroupCounters {
  const out: GroupCounters = {};
  chain.rules.forEach((text, i) => {
    const c = chain.counters?.[i];
    if (c === null || c === undefined) return;
    const set = /@\S+_(px4|px6|ax4|ax6|pp4|pp6|pa4|pa6|ap|pr4|pr6)\b/.exec(text)?.[1] as GroupSetSuffix | undefined;
    if (set !== undefined) out[set] = c;
    else if (text === 'counter drop' || text === 'counter') out.drop = c; // 'counter': an audit chain's would-be drop
    else if (text === 'counter accept' || text === 'counter return') out.allowAll = c;
  });
  return out;
}

/** What each set of a group holds, for reports: which peers and ports a lookup's counter counts. */
export const GROUP_SET_MEANING: Readonly<Record<GroupSetSuffix, string>> = {
  px4: 'IPv4 pod address . protocol . port',
  px6: 'IPv6 pod address . protocol . port',
  ax4: 'IPv4 pod address, every port',
  ax6: 'IPv6 pod address, every port',
  pp4: 'IPv4 block . protocol . port or port range',
  pp6: 'IPv6 block . protocol . port or port range',
  pa4: 'IPv4 block, every port',
  pa6: 'IPv6 block, every port',
  ap: 'every peer . protocol . port',
  pr4: 'IPv4 pod address . protocol . port range',
  pr6: 'IPv6 pod address . protocol . port range',
};

/** Names of the sets that belong to a group chain. */
export function groupSetNames(name: string): string[] {
  return GROUP_SETS.map((s) => groupSetName(name, s.suffix));
}
