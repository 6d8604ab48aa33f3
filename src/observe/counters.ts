// The kernel's per-rule counters of the group chains, as /rules shows them per local pod and as
// /metrics sums them. Granularity: one counter per group chain rule. A group chain is shared by the
// local pods bound to the same rules, and each of its allowing rules is one lookup in a flattened set
// whose elements merge the peers and ports of every policy rule of the group, so a lookup's counter
// counts every policy rule whose traffic falls in that set; the drop counter is the group's, shared by
// its pods. Counters start at 0 whenever the chain is written again (its bound rules changed).
import type { Direction } from '../api';
import type { GroupCounterReport } from '../dataplane';
import type { GroupCounters, GroupRuleRole } from '../dataplane/layout';
import { GROUP_SET_MEANING, GROUP_SET_SUFFIXES } from '../dataplane/layout';
import type { RuleCounter } from '../dataplane/nft';

export interface LookupCounter extends RuleCounter {
  /** allowAll, or the set suffix (pp4, pp6, pa4, pa6, ap). */
  readonly rule: Exclude<GroupRuleRole, 'drop'>;
  /** What the rule looks up. */
  readonly matches: string;
}

/** A local pod's counters in one direction: those of its group chain. */
export interface DirectionCounters {
  readonly chain: string;
  /** How many local pods share this chain, and so these counters. */
  readonly sharedBy: number;
  readonly allowed: readonly LookupCounter[];
  readonly allowedTotal: RuleCounter;
  readonly dropped: RuleCounter;
}

export const COUNTER_GRANULARITY =
  'one counter per group chain rule: pods bound to the same rules share a chain, and a lookup counts every policy rule whose peers and ports its flattened set merges';

function add(a: RuleCounter, b: RuleCounter): RuleCounter {
  return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
}

const ZERO: RuleCounter = { packets: 0, bytes: 0 };

export function directionCounters(group: GroupCounterReport): DirectionCounters {
  const c: GroupCounters = group.counters;
  const allowed: LookupCounter[] = [];
  if (c.allowAll !== undefined) allowed.push({ rule: 'allowAll', matches: 'every peer, every port', ...c.allowAll });
  for (const suffix of GROUP_SET_SUFFIXES) {
    const v = c[suffix];
    if (v !== undefined) allowed.push({ rule: suffix, matches: GROUP_SET_MEANING[suffix], ...v });
  }
  return {
    chain: group.chain,
    sharedBy: group.pods.length,
    allowed,
    allowedTotal: allowed.reduce<RuleCounter>((s, x) => add(s, x), ZERO),
    dropped: c.drop ?? ZERO,
  };
}

/**
 * Totals per namespace and direction, the labels /metrics uses (bounded by the namespaces with local
 * isolated pods, never per pod or address). A chain whose pods span namespaces (pods isolated with no
 * rule share one) is counted under SHARED_NAMESPACE.
 */
export function countersByNamespace(groups: readonly GroupCounterReport[]): Map<string, { namespace: string; direction: Direction; allowed: RuleCounter; dropped: RuleCounter }> {
  const out = new Map<string, { namespace: string; direction: Direction; allowed: RuleCounter; dropped: RuleCounter }>();
  for (const g of groups) {
    const namespaces = new Set(g.pods.map((p) => p.slice(0, p.indexOf('/'))));
    const namespace = namespaces.size === 1 ? ([...namespaces][0] as string) : SHARED_NAMESPACE;
    const dc = directionCounters(g);
    const key = `${namespace}|${g.direction}`;
    const cur = out.get(key) ?? { namespace, direction: g.direction, allowed: ZERO, dropped: ZERO };
    out.set(key, { ...cur, allowed: add(cur.allowed, dc.allowedTotal), dropped: add(cur.dropped, dc.dropped) });
  }
  return out;
}

/** The namespace label of a chain shared by pods of several namespaces (isolated pods bound to no rule). */
export const SHARED_NAMESPACE = '(several)';

export function formatDirectionCounters(c: DirectionCounters): string[] {
  const n = (x: RuleCounter): string => `${x.packets} pkts/${x.bytes} B`;
  const shared = c.sharedBy > 1 ? `, shared by ${c.sharedBy} pods` : '';
  return [
    `      counters (chain ${c.chain}${shared}): allowed ${n(c.allowedTotal)}  dropped ${n(c.dropped)}`,
    ...c.allowed.map((a) => `        ${a.rule} (${a.matches}): ${n(a)}`),
  ];
}
