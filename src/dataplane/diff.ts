// One diff for every way the dataplane writes: from what the kernel holds (or what we last wrote)
// to what the rule table wants, as one transaction ordered so every reference exists when used:
// create sets and chains, swap set elements (deletes first: interval elements must never overlap),
// rewrite the rules of changed chains, then remove what is no longer wanted. Whatever someone else
// left in our table (another hook, set flags, map types, statements, object kinds) is replaced or
// removed in that same transaction, so no packet ever sees the table half repaired.
import type { ChainView, DesiredView, KernelView, RuleBody, SetView } from './layout';
import { elementId } from './layout';
import type { ForeignKind, TableSnapshot } from './nft';
import { FOREIGN_KINDS, Transaction, isValidName } from './nft';

/**
 * Names an incremental diff may touch; null scope: everything (a full reconcile). A set in scope is
 * compared whole (null) or, when only some elements can have changed, on those element ids alone,
 * so an update costs what it changes rather than the size of the set.
 */
export interface Scope {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlyMap<string, ReadonlySet<string> | null>;
}

export function viewFromSnapshot(snapshot: TableSnapshot): KernelView {
  const view: KernelView = { chains: new Map(), sets: new Map(), foreign: snapshot.foreign };
  for (const c of snapshot.chains) {
    view.chains.set(c.name, { ...(c.base === undefined ? {} : { base: c.base }), rules: c.rules.map((text): RuleBody => ({ text, tokens: null })) });
  }
  for (const s of [...snapshot.sets, ...snapshot.maps]) {
    const elements = new Map<string, { key: readonly string[]; jump?: string }>();
    for (const e of s.elements) {
      const target = typeof e.value === 'object' ? e.value.jump : undefined;
      elements.set(elementId(e.key), target === undefined ? { key: e.key } : { key: e.key, jump: target });
    }
    const value = 'value' in s ? s.value : undefined;
    const foreign = [...(s.foreign === undefined ? [] : [s.foreign]), ...(value === undefined || value === 'verdict' ? [] : [`map of ${value}`])];
    view.sets.set(s.name, { type: s.type, flags: s.flags, elements, map: value !== undefined, ...(foreign.length === 0 ? {} : { foreign: foreign.join(', ') }) });
  }
  return view;
}

function sameShape(a: SetView, b: SetView): boolean {
  return a.map === b.map && a.type.join() === b.type.join() && a.flags.join() === b.flags.join() && a.foreign === b.foreign;
}

function sameRules(a: readonly RuleBody[], b: readonly RuleBody[]): boolean {
  return a.length === b.length && a.every((r, i) => r.text === b[i]?.text);
}

function sameBase(a: ChainView, b: ChainView): boolean {
  const x = a.base;
  const y = b.base;
  if (x === undefined || y === undefined) return x === y;
  return x.type === y.type && x.hook === y.hook && x.priority === y.priority && x.policy === y.policy && x.devices === undefined && y.devices === undefined;
}

/** Something in the listing the transaction could not name (an odd name, an unknown kind): only replacing the table removes it. */
function hasUnnameable(view: KernelView): boolean {
  const names = [...view.chains.keys(), ...view.sets.keys(), ...(view.foreign ?? []).map((f) => f.name)];
  return names.some((n) => !isValidName(n)) || (view.foreign ?? []).some((f) => !(FOREIGN_KINDS as readonly string[]).includes(f.type));
}

function setReferences(ruleText: string): string[] {
  return [...ruleText.matchAll(/@([A-Za-z0-9_.-]+)/g)].map((m) => m[1] as string);
}

function inScope(names: { has(name: string): boolean } | undefined, name: string): boolean {
  return names === undefined || names.has(name);
}

/**
 * The transaction that turns `current` (null: no table) into `desired` for the names in scope.
 * A set or chain whose shape differs (type, flags, hook) is deleted and created again in the same
 * transaction, and objects of other kinds are deleted; that only happens when someone else edited
 * our table. If the listing holds something no command can name, the table itself is deleted and
 * written again, still in one transaction.
 */
export function diffViews(table: string, listed: KernelView | null, desired: DesiredView, scope: Scope | null): Transaction {
  const tx = new Transaction(table);
  let current = listed;
  if (current !== null && scope === null && hasUnnameable(current)) {
    tx.delete({ kind: 'table' });
    current = null;
  }
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
  for (const name of recreateSets) tx.delete({ kind: cur.sets.get(name)?.map === true ? 'map' : 'set', name });

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
    const before: ReadonlyMap<string, { key: readonly string[]; jump?: string }> = have?.elements ?? new Map();
    const only = have === undefined ? null : (setNames?.get(name) ?? null);
    for (const id of only ?? before.keys()) {
      const e = before.get(id);
      const w = want.elements.get(id);
      if (e !== undefined && (w === undefined || w.jump !== e.jump)) tx.delete({ kind: 'element', set: name, key: e.key });
    }
    for (const id of only ?? want.elements.keys()) {
      const e = want.elements.get(id);
      const h = before.get(id);
      if (e !== undefined && (h === undefined || h.jump !== e.jump)) tx.add({ kind: 'element', set: name, key: e.key, ...(e.jump === undefined ? {} : { value: { jump: e.jump } }) });
    }
  }
  for (const name of rewrite) {
    for (const rule of desired.chains.get(name)?.rules ?? []) tx.add({ kind: 'rule', chain: name, body: rule.tokens ?? [] });
  }
  // Sets before chains: a map someone left may still jump to a chain that goes.
  for (const name of unwantedSets) tx.delete({ kind: cur.sets.get(name)?.map === true ? 'map' : 'set', name });
  for (const name of unwantedChains) tx.delete({ kind: 'chain', name });
  if (scope === null) for (const f of cur.foreign ?? []) tx.delete({ kind: 'foreign', type: f.type as ForeignKind, name: f.name });
  return tx;
}
