// One normalizer for TableSnapshots, so that the kernel's listing, the fake's
// listing and a desired state compare with deepStrictEqual. Each step names
// what it hides and why:
//
//  1. Handles -> 0. Rule handles are allocated per table by the kernel from a
//     counter that failed batches may advance; the fake's counter does not
//     replay that. Order of rules within a chain is kept (it is semantic).
//  2. Counter values -> 0 (named counters and per-element counters): they
//     depend on traffic. Whether a counter exists is kept.
//  3. Element keys -> canonical text (values.ts): the kernel prints an address
//     range that is exactly a prefix as a/len, a /32 (/128) or a-a range as
//     the address, IPv6 in inet_ntop form. Transactions already write that
//     form, so this matters for snapshots built by hand or by other writers.
//  4. Elements sorted by key (numerically, field by field): the kernel lists
//     interval sets in key order and hash sets in hash order; the fake in
//     insertion order.
//  5. Chains, sets, maps and counters sorted by name: the kernel lists them in
//     creation order, which differs from the fake's after delete + re-create.
//  6. Set flags in kernel bit order (constant, interval).
//  7. Rule bodies: runs of whitespace collapsed to one space and trimmed
//     (parse-json and the helpers already print single spaces; defensive).
//     Rule text needs no other rewriting because parse-json prints listed
//     rules through the same helpers that wrote them, and the helpers write
//     nft's canonical forms (ct states in bit order, `tcp dport 80` rather than
//     `meta l4proto tcp th dport 80`, prefixes as a/len).
//  8. Optional fields are absent rather than undefined.

import type { ChainSnapshot, ElementSnapshot, MapSnapshot, SetSnapshot, TableSnapshot } from './backend';
import { SET_FLAG_ORDER } from './objects';
import { ValueError, compareParsed, parseKeyPart, type ParsedValue } from './values';

function byName<T extends { readonly name: string }>(xs: readonly T[]): T[] {
  return [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function parsedOrNull(part: string): ParsedValue | null {
  try {
    return parseKeyPart(part);
  } catch (err) {
    if (err instanceof ValueError) return null;
    throw err;
  }
}

function comparePart(a: string, b: string): number {
  const pa = parsedOrNull(a);
  const pb = parsedOrNull(b);
  if (pa !== null && pb !== null) return compareParsed(pa, pb);
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = comparePart(a[i] ?? '', b[i] ?? '');
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** Canonical text of one key part; unparseable parts are kept as they are. */
export function canonicalKeyPart(part: string): string {
  return parsedOrNull(part)?.text ?? part;
}

function normalizeElement(e: ElementSnapshot): ElementSnapshot {
  return {
    key: e.key.map(canonicalKeyPart),
    ...(e.value === undefined ? {} : { value: typeof e.value === 'string' ? e.value : { ...e.value } }),
    ...(e.comment === undefined ? {} : { comment: e.comment }),
    ...(e.counter === undefined ? {} : { counter: { packets: 0, bytes: 0 } }),
  };
}

function normalizeSet(s: SetSnapshot): SetSnapshot {
  return {
    name: s.name,
    type: [...s.type],
    flags: SET_FLAG_ORDER.filter((f) => s.flags.includes(f)),
    counter: s.counter,
    ...(s.comment === undefined ? {} : { comment: s.comment }),
    elements: s.elements.map(normalizeElement).sort((a, b) => compareKeys(a.key, b.key)),
  };
}

function normalizeChain(c: ChainSnapshot): ChainSnapshot {
  return {
    name: c.name,
    ...(c.base === undefined ? {} : { base: { ...c.base } }),
    rules: c.rules.map((r) => ({
      handle: 0,
      body: r.body.replace(/\s+/g, ' ').trim(),
      ...(r.comment === undefined ? {} : { comment: r.comment }),
    })),
  };
}

export function normalizeSnapshot(s: TableSnapshot | null): TableSnapshot | null {
  if (s === null) return null;
  return {
    family: 'inet',
    name: s.name,
    chains: byName(s.chains).map(normalizeChain),
    sets: byName(s.sets).map(normalizeSet),
    maps: byName(s.maps).map((m): MapSnapshot => ({ ...normalizeSet(m), value: 'verdict' })),
    counters: byName(s.counters).map((c) => ({ name: c.name, packets: 0, bytes: 0 })),
  };
}
