// One diff for every way the dataplane writes: from what the kernel holds (or what we last wrote)
// to what the rule table wants, as one transaction ordered so every reference exists when used:
// create sets and chains, swap set elements (deletes first: interval elements must never overlap),
// rewrite the rules of changed chains, then remove what is no longer wanted.
import type { ChainView, KernelView, RuleBody, SetView } from './layout';
import { elementId } from './layout';
import type { TableSnapshot } from './nft';
import { Transaction } from './nft';

/** Names an incremental diff may touch; null scope: everything (a full reconcile). */
export interface Scope {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
}

export function viewFromSnapshot(snapshot: TableSnapshot): KernelView {
  const view: KernelView = { chains: new Map(), sets: new Map() };
  for (const c of snapshot.chains) {
    view.chains.set(c.name, { ...(c.base === undefined ? {} : { base: c.base }), rules: c.rules.map((r): RuleBody => ({ text: r.body, tokens: null })) });
  }
  for (const [list, map] of [[snapshot.sets, false], [snapshot.maps, true]] as const) {
    for (const s of list) {
      const elements = new Map<string, { key: readonly string[]; jump?: string }>();
      for (const e of s.elements) {
        const target = typeof e.value === 'object' && 'jump' in e.value ? e.value.jump : undefined;
        elements.set(elementId(e.key), target === undefined ? { key: e.key } : { key: e.key, jump: target });
      }
      view.sets.set(s.name, { type: s.type as SetView['type'], flags: s.flags, elements, map });
    }
  }
  return view;
}

function sameShape(a: SetView, b: SetView): boolean {
  return a.map === b.map && a.type.join() === b.type.join() && a.flags.join() === b.flags.join();
}

function sameRules(a: readonly RuleBody[], b: readonly RuleBody[]): boolean {
  return a.length === b.length && a.every((r, i) => r.text === b[i]?.text);
}

function sameBase(a: ChainView, b: ChainView): boolean {
  return JSON.stringify(a.base ?? null) === JSON.stringify(b.base ?? null);
}

function setReferences(ruleText: string): string[] {
  return [...ruleText.matchAll(/@([A-Za-z0-9_.-]+)/g)].map((m) => m[1] as string);
}

function inScope(names: ReadonlySet<string> | undefined, name: string): boolean {
  return names === undefined || names.has(name);
}

/**
 * The transaction that turns `current` (null: no table) into `desired` for the names in scope.
 * A set or chain whose shape differs (type, flags, hook) is deleted and created again in the same
 * transaction; that only happens when someone else edited our table.
 */
export function diffViews(table: string, current: KernelView | null, desired: KernelView, scope: Scope | null): Transaction {
  const tx = new Transaction(table);
  const cur: KernelView = current ?? { chains: new Map(), sets: new Map() };
  const chainNames = scope?.chains;
  const setNames = scope?.sets;
  if (current === null) tx.add({ kind: 'table' });

  // Chains to rewrite or replace, and shapes that changed under us.
  const rewrite: string[] = [];
  const recreateChains = new Set<string>();
  for (const [name, want] of desired.chains) {
    if (!inScope(chainNames, name)) continue;
    const have = cur.chains.get(name);
    if (have !== undefined && !sameBase(have, want)) recreateChains.add(name);
    if (have === undefined || recreateChains.has(name) || !sameRules(have.rules, want.rules)) rewrite.push(name);
  }
  const recreateSets = new Set<string>();
  for (const [name, want] of desired.sets) {
    const have = cur.sets.get(name);
    if (inScope(setNames, name) && have !== undefined && !sameShape(have, want)) recreateSets.add(name);
  }
  // A set can only be deleted once no rule refers to it: empty the chains that use a doomed set.
  const unwantedChains = [...cur.chains.keys()].filter((n) => inScope(chainNames, n) && !desired.chains.has(n));
  const unwantedSets = [...cur.sets.keys()].filter((n) => inScope(setNames, n) && !desired.sets.has(n));
  const doomedSets = new Set([...recreateSets, ...unwantedSets]);
  for (const [name, have] of cur.chains) {
    const usesDoomed = doomedSets.size > 0 && have.rules.some((r) => setReferences(r.text).some((ref) => doomedSets.has(ref)));
    if (usesDoomed && desired.chains.has(name) && !rewrite.includes(name)) rewrite.push(name);
    if (usesDoomed || rewrite.includes(name) || unwantedChains.includes(name)) tx.flush({ kind: 'chain', name });
  }
  for (const name of recreateChains) tx.delete({ kind: 'chain', name });
  for (const name of recreateSets) tx.delete({ kind: desired.sets.get(name)?.map === true ? 'map' : 'set', name });

  for (const [name, want] of desired.sets) {
    if (!inScope(setNames, name)) continue;
    const have = recreateSets.has(name) ? undefined : cur.sets.get(name);
    if (have === undefined) tx.add({ kind: want.map ? 'map' : 'set', name, type: want.type, flags: want.flags });
  }
  for (const name of rewrite) {
    const want = desired.chains.get(name);
    if (want !== undefined && (recreateChains.has(name) || !cur.chains.has(name))) tx.add({ kind: 'chain', name, ...(want.base === undefined ? {} : { base: want.base }) });
  }
  for (const [name, want] of desired.sets) {
    if (!inScope(setNames, name)) continue;
    const have = recreateSets.has(name) ? undefined : cur.sets.get(name);
    const before = have?.elements ?? new Map<string, { key: readonly string[]; jump?: string }>();
    for (const [id, e] of before) {
      const w = want.elements.get(id);
      if (w === undefined || w.jump !== e.jump) tx.delete({ kind: 'element', set: name, key: e.key });
    }
    for (const [id, e] of want.elements) {
      const h = before.get(id);
      if (h === undefined || h.jump !== e.jump) tx.add({ kind: 'element', set: name, key: e.key, ...(e.jump === undefined ? {} : { value: { jump: e.jump } }) });
    }
  }
  for (const name of rewrite) {
    for (const rule of desired.chains.get(name)?.rules ?? []) tx.add({ kind: 'rule', chain: name, body: rule.tokens ?? [] });
  }
  for (const name of unwantedChains) tx.delete({ kind: 'chain', name });
  for (const name of unwantedSets) tx.delete({ kind: cur.sets.get(name)?.map === true ? 'map' : 'set', name });
  return tx;
}
