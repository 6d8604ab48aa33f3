// FakeNft: an in-memory NftBackend that fails the way nft 1.0.6 on a 6.x kernel does, and evaluates
// packets against what it holds. run() copies the table, applies every operation in order to the copy
// and commits only if all succeed. The semantics below were checked against the kernel
// (test/netns/nft-agreement.test.ts runs the same transactions through both and compares).
//
// Kernel behaviour reproduced:
//   table   add: idempotent. delete: ENOENT, else everything goes.
//   chain   add on an existing chain: no-op, except the given policy is applied; a different
//           type/hook/priority, or a hook and policy on a regular chain, is EOPNOTSUPP (EINVAL here).
//           flush: its rules. delete: ENOENT; EBUSY while any rule jumps to it or any map element
//           jumps to it; its own rules go with it.
//   rule    chain must exist; @set/@map and jump targets must exist (ENOENT); a key type that does
//           not match the set's, or a jump to a base chain, is EINVAL.
//   set/map one namespace for both. add of an existing one with another kind, type or flags: EEXIST.
//           delete works on either kind (`delete set` deletes a map too, as in nft); EBUSY while a
//           rule references it.
//   element set/map must exist (ENOENT). Key arity or kinds that do not fit the type, a
//           range/prefix without `flags interval`, a value in a set or none in a map: EINVAL. add of
//           an existing key: no-op, or EEXIST in a map if the value differs. Overlaps in interval
//           sets are EEXIST, with the kernel's two rules:
//             - single field (rbtree, checked by nft itself): any overlap;
//             - concatenation (pipapo): the new element's first or last point falls inside an
//               existing element (so a new element that strictly contains an old one is accepted).
//           delete: exact key, else ENOENT; except in concatenated interval sets, where the kernel
//           deletes the element containing the key's first point: reproduced, exact match preferred.
//   loops   a jump/vmap cycle reachable from a base chain is ELOOP in the kernel (EINVAL here);
//           checked once at the end of the transaction.
// Objects someone else could have put in our table (another hook, set flags, map value types,
// statements, flowtables...) are planted with plant(): they are listed as the kernel lists them and
// can be deleted, which is what reconcile needs of them.
// Not reproduced: the 16-level jump depth limit.

import { parseIp } from '../../src/net/ip';
import { ERRNO, NftApplyError, NftClosedError, NftValidationError, type NftApplyErrorCode, type OpSummary } from '../../src/dataplane/nft/errors';
import type { ChainSnapshot, ElementSnapshot, ListedBase, MapSnapshot, NftBackend, SetSnapshot, TableSnapshot } from '../../src/dataplane/nft/backend';
import { MATCH_FIELD_TYPE, parseKey, type Chain, type Element, type Icmpv6Type, type MatchField, type NftSet, type RuleToken, type Verb, type Verdict } from '../../src/dataplane/nft/objects';
import { Transaction, type Operation } from '../../src/dataplane/nft/transaction';
import { DATATYPE_KIND, L4_PROTOCOLS, SET_DATATYPES, compareParsed, type ParsedValue, type SetDatatype } from '../../src/dataplane/nft/values';

interface FakeRule {
  /** null for a rule someone else wrote with statements the helpers do not write (planted). */
  readonly body: readonly RuleToken[] | null;
  readonly text: string;
  /** The rule's anonymous counter (null: it has none); the evaluator moves it, a rewrite of the rule starts it at 0. */
  readonly counter: { packets: number; bytes: number } | null;
}

interface FakeChain {
  readonly name: string;
  base?: ListedBase;
  rules: FakeRule[];
}

interface FakeElement {
  /** Canonical key text: the element's identity. */
  readonly id: string;
  readonly key: readonly ParsedValue[];
  readonly value?: Verdict;
}

interface FakeSet {
  readonly kind: 'set' | 'map';
  readonly name: string;
  readonly type: readonly string[];
  readonly flags: readonly string[];
  /** A map's value type ("verdict" for ours). */
  readonly value?: string;
  /** What a planted set carries that ours never do (see SetSnapshot.foreign). */
  readonly foreign?: string;
  elements: ElementStore;
}

/** What someone else could have put in our table, for plant(). */
export type ForeignPlant =
  | { readonly kind: 'set' | 'map'; readonly name: string; readonly type: readonly string[]; readonly flags: readonly string[]; readonly value?: string; readonly foreign?: string }
  | { readonly kind: 'chain'; readonly name: string; readonly base?: ListedBase }
  | { readonly kind: 'rule'; readonly chain: string; readonly text: string }
  | { readonly kind: 'object'; readonly type: string; readonly name: string };

/** One packet at one hook of the node, as the fake's evaluator takes it. */
export interface Packet {
  readonly hook: 'forward' | 'input';
  readonly saddr: string;
  readonly daddr: string;
  readonly protocol: 'tcp' | 'udp' | 'sctp' | 'icmpv6';
  /** Destination port (tcp, udp, sctp). */
  readonly dport?: number;
  readonly icmpv6Type?: Icmpv6Type;
  readonly ct: 'new' | 'established' | 'related';
  /** Bytes the counters add for this packet (default 0). */
  readonly length?: number;
}

/**
 * The elements of one set: a map by canonical key, plus, for interval sets,
 * the elements sorted by the low end of their first field, so that overlap and
 * containment checks look at a few candidates instead of every element.
 */
class ElementStore {
  readonly #byId: Map<string, FakeElement>;
  readonly #sorted: FakeElement[] | null;
  /** Widest first-field interval ever stored (never shrinks: a safe bound). */
  #maxSpan: bigint;

  constructor(interval: boolean, from?: ElementStore) {
    if (from === undefined) {
      this.#byId = new Map();
      this.#sorted = interval ? [] : null;
      this.#maxSpan = 0n;
    } else {
      this.#byId = new Map(from.#byId);
      this.#sorted = from.#sorted === null ? null : [...from.#sorted];
      this.#maxSpan = from.#maxSpan;
    }
  }

  clone(): ElementStore {
    return new ElementStore(this.#sorted !== null, this);
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): FakeElement | undefined {
    return this.#byId.get(id);
  }

  values(): IterableIterator<FakeElement> {
    return this.#byId.values();
  }

  add(e: FakeElement): void {
    this.#byId.set(e.id, e);
    const first = e.key[0];
    if (this.#sorted === null || first === undefined) return;
    if (first.hi - first.lo > this.#maxSpan) this.#maxSpan = first.hi - first.lo;
    this.#sorted.splice(this.#lowerBound(first.lo + 1n), 0, e);
  }

  delete(id: string): boolean {
    const e = this.#byId.get(id);
    if (e === undefined) return false;
    this.#byId.delete(id);
    const first = e.key[0];
    if (this.#sorted !== null && first !== undefined) {
      for (let i = this.#lowerBound(first.lo); i < this.#sorted.length; i++) {
        if (this.#sorted[i] === e) {
          this.#sorted.splice(i, 1);
          break;
        }
      }
    }
    return true;
  }

  /** Elements whose first field may intersect [lo, hi] (all elements in a non-interval set). */
  *candidates(lo: bigint, hi: bigint): Generator<FakeElement> {
    if (this.#sorted === null) {
      yield* this.#byId.values();
      return;
    }
    for (let i = this.#lowerBound(lo - this.#maxSpan); i < this.#sorted.length; i++) {
      const e = this.#sorted[i];
      const first = e?.key[0];
      if (e === undefined || first === undefined || first.lo > hi) break;
      yield e;
    }
  }

  /** First index whose first-field low end is >= x. */
  #lowerBound(x: bigint): number {
    const arr = this.#sorted ?? [];
    let a = 0;
    let b = arr.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      const lo = arr[mid]?.key[0]?.lo ?? 0n;
      if (lo < x) a = mid + 1;
      else b = mid;
    }
    return a;
  }
}

interface FakeTable {
  chains: Map<string, FakeChain>;
  sets: Map<string, FakeSet>;
  /** "type name" -> object of a kind we never create. */
  foreign: Map<string, { readonly type: string; readonly name: string }>;
}

/** A failure inside the simulation; becomes an NftApplyError with the op. */
class Failure extends Error {
  constructor(
    readonly code: NftApplyErrorCode,
    readonly nftMessage: string,
  ) {
    super(nftMessage);
  }
}

const KERNEL_TEXT: Readonly<Record<NftApplyErrorCode, string>> = {
  ENOENT: 'Could not process rule: No such file or directory',
  EEXIST: 'Could not process rule: File exists',
  EBUSY: 'Could not process rule: Device or resource busy',
  EINVAL: 'Could not process rule: Invalid argument',
};

function fail(code: NftApplyErrorCode, message: string = KERNEL_TEXT[code]): never {
  throw new Failure(code, message);
}

function keyText(key: readonly ParsedValue[]): string {
  return key.map((p) => p.text).join(' . ');
}

function sameVerdict(a: Verdict | undefined, b: Verdict | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function verdictTarget(v: Verdict | undefined): string | null {
  return v !== undefined && typeof v === 'object' ? v.jump : null;
}

/** Sets a rule refers to: from its tokens, or for a planted rule from its text. */
function ruleSetRefs(r: FakeRule): string[] {
  if (r.body === null) return [...r.text.matchAll(/@([A-Za-z0-9_.-]+)/g)].map((m) => m[1] as string);
  return r.body.flatMap((tok) => (tok.setRef === null ? [] : [tok.setRef.name]));
}

function ruleJumps(r: FakeRule): string[] {
  if (r.body === null) return [...r.text.matchAll(/(?:jump|goto) ([A-Za-z0-9_.-]+)/g)].map((m) => m[1] as string);
  return r.body.flatMap((tok) => (tok.jumpTarget === null ? [] : [tok.jumpTarget]));
}

function contains(el: FakeElement, point: readonly bigint[]): boolean {
  return el.key.every((p, i) => {
    const x = point[i];
    return x !== undefined && p.lo <= x && x <= p.hi;
  });
}

function intersects(a: FakeElement, b: readonly ParsedValue[]): boolean {
  return a.key.every((p, i) => {
    const q = b[i];
    return q !== undefined && p.lo <= q.hi && q.lo <= p.hi;
  });
}

function cloneTable(t: FakeTable): FakeTable {
  const chains = new Map<string, FakeChain>();
  for (const [k, c] of t.chains) chains.set(k, { ...c, rules: [...c.rules] });
  const sets = new Map<string, FakeSet>();
  for (const [k, s] of t.sets) sets.set(k, { ...s, elements: s.elements.clone() });
  return { chains, sets, foreign: new Map(t.foreign) };
}

function emptyTable(): FakeTable {
  return { chains: new Map(), sets: new Map(), foreign: new Map() };
}

function compareKeys(a: readonly ParsedValue[], b: readonly ParsedValue[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const ai = a[i];
    const bi = b[i];
    if (ai === undefined || bi === undefined) break;
    const c = compareParsed(ai, bi);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** Applies operations to a table state (null: no table). */
class Simulator {
  table: FakeTable | null;
  /** Index of the last operation that added a jump/vmap edge (for loop errors). */
  lastLinkOp = -1;

  constructor(table: FakeTable | null) {
    this.table = table;
  }

  apply(op: Operation): void {
    const obj = op.object;
    if (obj.kind === 'table') {
      if (op.verb === 'add') this.table ??= emptyTable();
      else if (this.table === null) fail('ENOENT');
      else this.table = null;
      return;
    }
    const t = this.table ?? fail('ENOENT');
    switch (obj.kind) {
      case 'chain':
        return this.#chain(t, op.verb, obj);
      case 'rule': {
        const chain = t.chains.get(obj.chain) ?? fail('ENOENT', `No such file or directory; chain ${obj.chain} does not exist`);
        this.#checkRefs(t, obj.body);
        if (obj.body.some((tok) => tok.jumpTarget !== null || tok.setRef?.verdictMap === true)) this.lastLinkOp = op.index;
        chain.rules.push({ body: obj.body, text: obj.body.map((tok) => tok.text).join(' '), counter: obj.body.some((tok) => tok.expr?.kind === 'counter') ? { packets: 0, bytes: 0 } : null });
        return;
      }
      case 'set':
      case 'map':
        return this.#set(t, op.verb, obj);
      case 'element':
        return this.#element(t, op, obj);
      case 'foreign': {
        const id = `${obj.type} ${obj.name}`;
        if (!t.foreign.has(id)) fail('ENOENT');
        for (const c of t.chains.values()) for (const r of c.rules) if (ruleSetRefs(r).includes(obj.name)) fail('EBUSY');
        t.foreign.delete(id);
        return;
      }
    }
  }

  #chain(t: FakeTable, verb: Verb, obj: Chain): void {
    const existing = t.chains.get(obj.name);
    switch (verb) {
      case 'add': {
        if (existing === undefined) {
          t.chains.set(obj.name, { name: obj.name, rules: [], ...(obj.base === undefined ? {} : { base: { ...obj.base } }) });
          return;
        }
        if (obj.base === undefined) return;
        const b = existing.base;
        // We always send a policy: the kernel refuses one on a regular chain (EOPNOTSUPP) before looking at the hook.
        if (b === undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
        if (b.type !== obj.base.type || b.hook !== obj.base.hook || b.priority !== obj.base.priority || b.devices !== undefined) {
          fail('EINVAL', 'Could not process rule: Operation not supported');
        }
        existing.base = { ...b, policy: obj.base.policy };
        return;
      }
      case 'flush':
        (existing ?? fail('ENOENT')).rules = [];
        return;
      case 'delete':
        if (existing === undefined) fail('ENOENT');
        for (const c of t.chains.values()) for (const r of c.rules) if (ruleJumps(r).includes(obj.name)) fail('EBUSY');
        for (const s of t.sets.values()) for (const e of s.elements.values()) if (verdictTarget(e.value) === obj.name) fail('EBUSY');
        t.chains.delete(obj.name);
    }
  }

  #checkRefs(t: FakeTable, body: readonly RuleToken[]): void {
    for (const tok of body) {
      const ref = tok.setRef;
      if (ref !== null) {
        const s = t.sets.get(ref.name) ?? fail('ENOENT', 'No such file or directory');
        if (ref.verdictMap !== (s.kind === 'map' && s.value === 'verdict')) fail('EINVAL', `${ref.name} is ${s.kind === 'map' ? 'a map' : 'not a map'}`);
        if (ref.key.join(' . ') !== s.type.join(' . ')) fail('EINVAL', `datatype mismatch, expected ${s.type.join(' . ')}, expression has type ${ref.key.join(' . ')}`);
      }
      const target = tok.jumpTarget;
      if (target !== null && (t.chains.get(target) ?? fail('ENOENT')).base !== undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
    }
  }

  #isBound(t: FakeTable, name: string): boolean {
    for (const c of t.chains.values()) for (const r of c.rules) if (ruleSetRefs(r).includes(name)) return true;
    return false;
  }

  #set(t: FakeTable, verb: Verb, obj: NftSet): void {
    const existing = t.sets.get(obj.name);
    if (verb === 'delete') {
      if (existing === undefined) fail('ENOENT');
      if (this.#isBound(t, obj.name)) fail('EBUSY');
      t.sets.delete(obj.name);
      return;
    }
    const type = obj.type ?? [];
    const flags = obj.flags ?? [];
    if (existing === undefined) {
      t.sets.set(obj.name, {
        kind: obj.kind,
        name: obj.name,
        type,
        flags,
        ...(obj.kind === 'map' ? { value: 'verdict' } : {}),
        elements: new ElementStore(flags.includes('interval')),
      });
      return;
    }
    const same =
      existing.kind === obj.kind &&
      existing.type.join(' . ') === type.join(' . ') &&
      existing.flags.join(',') === flags.join(',') &&
      existing.value === (obj.kind === 'map' ? 'verdict' : undefined) &&
      existing.foreign === undefined;
    if (!same) fail('EEXIST');
  }

  #element(t: FakeTable, op: Operation, obj: Element): void {
    const s = t.sets.get(obj.set) ?? fail('ENOENT', 'No such file or directory');
    const key = parseKey(obj.key);
    if (key.length !== s.type.length) fail('EINVAL', `key has ${key.length} fields, ${s.name} has type ${s.type.join(' . ')}`);
    key.forEach((p, i) => {
      const dt = s.type[i] as SetDatatype;
      if (!SET_DATATYPES.includes(dt) || DATATYPE_KIND[dt] !== p.kind) fail('EINVAL', `datatype mismatch in field ${i}: ${p.text} is not ${String(dt)}`);
      if (p.lo !== p.hi && !s.flags.includes('interval')) fail('EINVAL', "You must add 'flags interval' to your set declaration if you want to add prefix elements");
    });
    if (op.verb === 'delete') return this.#deleteElement(s, key);
    if (s.kind === 'set' && obj.value !== undefined) fail('EINVAL', 'set is not a map');
    if (s.kind === 'map' && (obj.value === undefined || s.value !== 'verdict')) fail('EINVAL');
    const target = verdictTarget(obj.value);
    if (target !== null) {
      if ((t.chains.get(target) ?? fail('ENOENT')).base !== undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
      this.lastLinkOp = op.index;
    }
    this.#addElement(s, key, obj);
  }

  #addElement(s: FakeSet, key: readonly ParsedValue[], obj: Element): void {
    const id = keyText(key);
    const existing = s.elements.get(id);
    if (existing !== undefined) {
      if (!sameVerdict(existing.value, obj.value)) fail('EEXIST');
      return;
    }
    const k0 = key[0];
    if (s.flags.includes('interval') && k0 !== undefined) {
      if (key.length === 1) {
        for (const e of s.elements.candidates(k0.lo, k0.hi)) if (intersects(e, key)) fail('EEXIST', 'interval overlaps with an existing one');
      } else {
        const first = key.map((p) => p.lo);
        const last = key.map((p) => p.hi);
        for (const e of s.elements.candidates(k0.lo, k0.lo)) if (contains(e, first)) fail('EEXIST');
        for (const e of s.elements.candidates(k0.hi, k0.hi)) if (contains(e, last)) fail('EEXIST');
      }
    }
    s.elements.add({ id, key, ...(obj.value === undefined ? {} : { value: obj.value }) });
  }

  #deleteElement(s: FakeSet, key: readonly ParsedValue[]): void {
    if (s.elements.delete(keyText(key))) return;
    const k0 = key[0];
    if (s.flags.includes('interval') && key.length > 1 && k0 !== undefined) {
      const first = key.map((p) => p.lo);
      for (const e of s.elements.candidates(k0.lo, k0.lo)) {
        if (contains(e, first)) {
          s.elements.delete(e.id);
          return;
        }
      }
    }
    fail('ENOENT', s.flags.includes('interval') && key.length === 1 ? 'element does not exist' : KERNEL_TEXT.ENOENT);
  }

  /** True when a jump/vmap cycle is reachable from a base chain. */
  hasLoop(): boolean {
    const t = this.table;
    if (t === null) return false;
    const edges = (c: FakeChain): string[] =>
      c.rules.flatMap((r) => [
        ...ruleJumps(r),
        ...(r.body ?? []).flatMap((tok) => {
          const ref = tok.setRef;
          if (ref === null || !ref.verdictMap) return [];
          return [...(t.sets.get(ref.name)?.elements.values() ?? [])].flatMap((e) => verdictTarget(e.value) ?? []);
        }),
      ]);
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (name: string): boolean => {
      const st = state.get(name);
      if (st === 'visiting') return true;
      if (st === 'done') return false;
      const c = t.chains.get(name);
      if (c === undefined) return false;
      state.set(name, 'visiting');
      for (const next of edges(c)) if (visit(next)) return true;
      state.set(name, 'done');
      return false;
    };
    for (const c of t.chains.values()) if (c.base !== undefined && visit(c.name)) return true;
    return false;
  }
}

const ICMPV6_PROTOCOL = 58;

type ChainOutcome = 'accept' | 'drop' | 'continue';

/** Walks the programmed chains, verdict maps and sets for one packet, as the kernel's nf_tables does. */
class Evaluator {
  readonly #family: 4 | 6;
  readonly #saddr: bigint;
  readonly #daddr: bigint;

  constructor(
    private readonly t: FakeTable,
    private readonly p: Packet,
  ) {
    const s = parseIp(p.saddr);
    const d = parseIp(p.daddr);
    if (s === null || d === null || s.family !== d.family) throw new Error(`evaluate: bad addresses ${p.saddr} -> ${p.daddr}`);
    this.#family = s.family;
    this.#saddr = s.value;
    this.#daddr = d.value;
  }

  run(): 'accept' | 'drop' {
    const bases = [...this.t.chains.values()].filter((c) => c.base?.hook === this.p.hook).sort((a, b) => (a.base?.priority ?? 0) - (b.base?.priority ?? 0));
    for (const c of bases) {
      const out = this.#chain(c, 0);
      // accept ends this base chain only; a later base chain on the hook still sees the packet.
      if (out === 'drop' || (out === 'continue' && c.base?.policy === 'drop')) return 'drop';
    }
    return 'accept';
  }

  #chain(c: FakeChain, depth: number): ChainOutcome | 'return' {
    if (depth > 16) throw new Error(`evaluate: jumps nested too deep at chain ${c.name}`);
    for (const r of c.rules) {
      if (r.body === null) throw new Error(`evaluate: chain ${c.name} holds a rule the helpers do not write: ${r.text}`);
      const out = this.#rule(r, r.body, depth);
      if (out !== 'next') return out;
    }
    return 'continue';
  }

  /** 'next': the rule did not match, or a jump returned. */
  #rule(r: FakeRule, body: readonly RuleToken[], depth: number): ChainOutcome | 'return' | 'next' {
    for (const tok of body) {
      const e = tok.expr;
      if (e === null) throw new Error(`evaluate: token without meaning: ${tok.text}`);
      switch (e.kind) {
        case 'ct':
          if (!e.states.includes(this.p.ct)) return 'next';
          break;
        case 'icmpv6': {
          const type = this.p.icmpv6Type;
          if (this.#family !== 6 || this.p.protocol !== 'icmpv6' || type === undefined || !e.types.includes(type)) return 'next';
          break;
        }
        case 'lookup': {
          const s = this.#set(e.set);
          const key = this.#key(e.fields);
          if (key === null || s.kind !== 'set' || !this.#find(s, key)) return 'next';
          break;
        }
        case 'vmap': {
          const s = this.#set(e.map);
          const key = this.#key(e.fields);
          const found = key === null ? undefined : this.#find(s, key);
          if (found === undefined || found.value === undefined) return 'next';
          return this.#verdict(found.value, depth);
        }
        case 'counter':
          if (r.counter !== null) {
            r.counter.packets++;
            r.counter.bytes += this.p.length ?? 0;
          }
          break;
        case 'log':
        case 'limit':
          break;
        case 'verdict':
          return this.#verdict(e.verdict, depth);
      }
    }
    return 'next';
  }

  #verdict(v: Verdict, depth: number): ChainOutcome | 'return' | 'next' {
    if (v === 'accept' || v === 'drop' || v === 'return') return v;
    const target = this.t.chains.get(v.jump);
    if (target === undefined) throw new Error(`evaluate: jump to missing chain ${v.jump}`);
    const out = this.#chain(target, depth + 1);
    return out === 'accept' || out === 'drop' ? out : 'next';
  }

  #set(name: string): FakeSet {
    const s = this.t.sets.get(name);
    if (s === undefined) throw new Error(`evaluate: lookup in missing set ${name}`);
    return s;
  }

  /** The packet's value of each field; null when a field does not apply (ip saddr of an IPv6 packet). */
  #key(fields: readonly MatchField[]): bigint[] | null {
    const out: bigint[] = [];
    for (const f of fields) {
      const type = MATCH_FIELD_TYPE[f];
      if (type === 'ipv4_addr' || type === 'ipv6_addr') {
        if (this.#family !== (type === 'ipv4_addr' ? 4 : 6)) return null;
        out.push(f.endsWith('saddr') ? this.#saddr : this.#daddr);
      } else if (f === 'meta l4proto') out.push(BigInt(this.p.protocol === 'icmpv6' ? ICMPV6_PROTOCOL : L4_PROTOCOLS[this.p.protocol]));
      else {
        if (this.p.dport === undefined) return null;
        out.push(BigInt(this.p.dport));
      }
    }
    return out;
  }

  #find(s: FakeSet, key: readonly bigint[]): FakeElement | undefined {
    const k0 = key[0] ?? 0n;
    for (const e of s.elements.candidates(k0, k0)) if (contains(e, key)) return e;
    return undefined;
  }
}

export class FakeNft implements NftBackend {
  readonly table: string;
  #state: FakeTable | null = null;
  #closed = false;
  /** The last transaction passed to run() (even if it failed). */
  lastTransaction: Transaction | null = null;
  /** Transactions passed to run() so far, failed ones included. */
  runs = 0;
  #fault: { readonly atRun: number; readonly error: Error; readonly afterCommit: boolean } | null = null;

  constructor(table: string) {
    this.table = table;
  }

  async run(tx: Transaction): Promise<void> {
    this.lastTransaction = tx;
    this.runs++;
    const fault = this.#fault !== null && this.#fault.atRun === this.runs ? this.#fault : null;
    if (fault !== null && !fault.afterCommit) throw fault.error;
    this.#state = this.#simulate(tx);
    if (fault !== null) throw fault.error;
  }

  /**
   * Fault injection: the `n`th run() from now (1: the next one) throws `error`, leaving the table
   * as it was, or, with afterCommit, after applying the transaction (a reply lost on the way back).
   */
  failRun(n: number, error: Error, options: { readonly afterCommit?: boolean } = {}): void {
    this.#fault = { atRun: this.runs + n, error, afterCommit: options.afterCommit === true };
  }

  async check(tx: Transaction): Promise<void> {
    this.#simulate(tx);
  }

  async list(): Promise<TableSnapshot | null> {
    this.#assertOpen();
    return this.#snapshot();
  }

  /** As the kernel backend lists for counters: sets and maps without elements (the fake has no queue to order). */
  async listCounters(): Promise<TableSnapshot | null> {
    const snapshot = await this.list();
    if (snapshot === null) return null;
    return { ...snapshot, sets: snapshot.sets.map((s) => ({ ...s, elements: [] })), maps: snapshot.maps.map((m) => ({ ...m, elements: [] })) };
  }

  close(): void {
    this.#closed = true;
  }

  /**
   * Puts objects someone else could have written into the table (creating it if needed), the way
   * `nft` would leave them; a planted set, map or chain replaces ours of the same name.
   */
  plant(objects: readonly ForeignPlant[]): void {
    const t = this.#state ?? (this.#state = emptyTable());
    for (const o of objects) {
      switch (o.kind) {
        case 'set':
        case 'map':
          t.sets.set(o.name, {
            kind: o.kind,
            name: o.name,
            type: [...o.type],
            flags: [...o.flags],
            ...(o.kind === 'map' ? { value: o.value ?? 'verdict' } : {}),
            ...(o.foreign === undefined ? {} : { foreign: o.foreign }),
            elements: new ElementStore(o.flags.includes('interval')),
          });
          break;
        case 'chain':
          t.chains.set(o.name, { name: o.name, rules: [], ...(o.base === undefined ? {} : { base: { ...o.base } }) });
          break;
        case 'rule': {
          const c = t.chains.get(o.chain);
          if (c === undefined) throw new Error(`plant: no chain ${o.chain}`);
          c.rules.push({ body: null, text: o.text, counter: /(^|\s)counter(\s|$)/.test(o.text) ? { packets: 0, bytes: 0 } : null });
          break;
        }
        case 'object':
          t.foreign.set(`${o.type} ${o.name}`, { type: o.type, name: o.name });
      }
    }
  }

  /** The verdict of the programmed table for one packet at one hook (accept when nothing drops it). */
  evaluate(packet: Packet): 'accept' | 'drop' {
    return this.#state === null ? 'accept' : new Evaluator(this.#state, packet).run();
  }

  /**
   * The state as a batch of `add` commands that recreates it (objects sorted by name; elements sorted
   * by key, except in concatenated interval sets, where they keep insertion order because it decides
   * what the kernel accepts; rules in chain order). Planted objects show as comments. Empty string
   * when the table does not exist.
   */
  dump(): string {
    const t = this.#state;
    if (t === null) return '';
    const tx = new Transaction(this.table);
    const lines: string[] = [];
    tx.add({ kind: 'table' });
    const byName = <T extends { readonly name: string }>(xs: Iterable<T>): T[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const chains = byName(t.chains.values());
    for (const c of chains) {
      if (c.base !== undefined && (c.base.type !== 'filter' || (c.base.hook !== 'input' && c.base.hook !== 'forward') || c.base.devices !== undefined)) lines.push(`# foreign chain ${c.name} ${JSON.stringify(c.base)}`);
      else tx.add({ kind: 'chain', name: c.name, ...(c.base === undefined ? {} : { base: c.base as Required<Chain>['base'] }) });
    }
    const sets = byName(t.sets.values());
    for (const s of sets) {
      const ours = s.foreign === undefined && s.type.every((x) => SET_DATATYPES.includes(x as SetDatatype)) && s.flags.every((f) => f === 'interval') && (s.value ?? 'verdict') === 'verdict';
      if (ours) tx.add({ kind: s.kind, name: s.name, type: s.type as SetDatatype[], flags: s.flags as 'interval'[] });
      else lines.push(`# foreign ${s.kind} ${s.name} ${JSON.stringify({ type: s.type, flags: s.flags, value: s.value, foreign: s.foreign })}`);
    }
    for (const s of sets) {
      // Insertion order where it matters: in a concatenated interval set an element that contains an older one is accepted only after it.
      const elements = [...s.elements.values()];
      if (!(s.flags.includes('interval') && s.type.length > 1)) elements.sort((a, b) => compareKeys(a.key, b.key));
      for (const e of elements) tx.add({ kind: 'element', set: s.name, key: e.key.map((p) => p.text), ...(e.value === undefined ? {} : { value: e.value }) });
    }
    for (const c of chains) {
      for (const r of c.rules) {
        if (r.body === null) lines.push(`# foreign rule ${c.name} ${r.text}`);
        else tx.add({ kind: 'rule', chain: c.name, body: r.body });
      }
    }
    for (const f of [...t.foreign.keys()].sort()) lines.push(`# foreign ${f}`);
    return tx.toString() + lines.map((l) => l + '\n').join('');
  }

  #assertOpen(): void {
    if (this.#closed) throw new NftClosedError(`FakeNft(${this.table})`);
  }

  /** Applies tx to a copy of the state and returns the new state; throws on the first failure. */
  #simulate(tx: Transaction): FakeTable | null {
    this.#assertOpen();
    if (tx.table !== this.table) throw new NftValidationError('table', tx.table, `this backend owns table ${this.table}`);
    if (tx.error !== null) throw tx.error;
    const sim = new Simulator(this.#state === null ? null : cloneTable(this.#state));
    for (const index of tx.executionOrder()) {
      const op = tx.operations[index];
      if (op === undefined) continue;
      try {
        sim.apply(op);
      } catch (err) {
        if (err instanceof Failure) throw this.#error(err.code, err.nftMessage, op.summary, err);
        if (err instanceof NftValidationError) throw this.#error('EINVAL', err.message, op.summary, err);
        throw err;
      }
    }
    if (sim.hasLoop()) {
      const op = tx.operations[sim.lastLinkOp]?.summary ?? tx.operations[tx.operations.length - 1]?.summary ?? null;
      throw this.#error('EINVAL', 'Could not process rule: Too many links', op, null);
    }
    return sim.table;
  }

  #error(code: NftApplyErrorCode, message: string, op: OpSummary | null, cause: unknown): NftApplyError {
    return new NftApplyError(code, message, op, { cause, errno: ERRNO[code] });
  }

  #snapshot(): TableSnapshot | null {
    const t = this.#state;
    if (t === null) return null;
    const chains: ChainSnapshot[] = [...t.chains.values()].map((c) => ({
      name: c.name,
      ...(c.base === undefined ? {} : { base: { ...c.base } }),
      rules: c.rules.map((r) => (r.body === null ? `<foreign ${r.text}>` : r.text)),
      counters: c.rules.map((r) => (r.counter === null ? null : { ...r.counter })),
    }));
    const setSnap = (s: FakeSet): SetSnapshot => ({
      name: s.name,
      type: [...s.type],
      flags: [...s.flags],
      ...(s.foreign === undefined ? {} : { foreign: s.foreign }),
      elements: [...s.elements.values()].map((e): ElementSnapshot => ({ key: e.key.map((p) => p.text), ...(e.value === undefined ? {} : { value: e.value }) })),
    });
    const all = [...t.sets.values()];
    return {
      family: 'inet',
      name: this.table,
      chains,
      sets: all.filter((s) => s.kind === 'set').map(setSnap),
      maps: all.filter((s) => s.kind === 'map').map((s): MapSnapshot => ({ ...setSnap(s), value: s.value ?? 'verdict' })),
      foreign: [...t.foreign.values()].map((f) => ({ ...f })),
    };
  }
}
