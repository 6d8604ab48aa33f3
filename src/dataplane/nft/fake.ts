// FakeNft: an in-memory NftBackend that fails the way nft 1.0.6 on a 6.x
// kernel does. run() copies the table, applies every operation in order to the
// copy and commits only if all succeed. The semantics below were checked
// against the kernel (test/netns/nft-agreement.test.ts runs the same
// transactions through both and compares).
//
// Kernel behaviour reproduced:
//   table   add: idempotent. create: EEXIST. delete: ENOENT, else everything
//           goes. flush: removes the rules of every chain; sets and maps KEEP
//           their elements.
//   chain   add on an existing chain: no-op, except a given policy is applied;
//           a different type/hook/priority is EOPNOTSUPP (EINVAL here); a hook
//           on a regular chain is EEXIST, or EOPNOTSUPP if a policy is given. delete: ENOENT; EBUSY while any rule
//           (its own included) jumps/gotos to it or any map element
//           jumps/gotos to it; its own rules go with it.
//   rule    chain must exist; add/insert `handle` must be a rule of that chain;
//           replace keeps the handle; @set/@map, counters and jump/goto
//           targets must exist (ENOENT); a key type that does not match the
//           set's, or a jump to a base chain, is EINVAL.
//   set/map one namespace for both. add of an existing one with another kind,
//           type, flags or counter: EEXIST (the comment is not compared nor
//           updated). delete works on either kind (`delete set` deletes a map
//           too, as in nft); EBUSY while a rule references it. flush: ENOENT
//           on the other kind.
//   element set/map must exist (ENOENT). Key arity or kinds that do not fit
//           the type, a range/prefix without `flags interval`, a value in a
//           set or none in a map: EINVAL. A bound `constant` set cannot change
//           (EBUSY). add of an existing key: no-op (the old comment stays), or
//           EEXIST in a map if the value differs; create: EEXIST.
//           Overlaps in interval sets are EEXIST, with the kernel's two rules:
//             - single field (rbtree, checked by nft itself): any overlap;
//             - concatenation (pipapo): the new element's first or last point
//               falls inside an existing element (so a new element that
//               strictly contains an old one is accepted, as in the kernel).
//           delete: exact key, else ENOENT; except in concatenated interval
//           sets, where the kernel deletes the element containing the key's
//           first point (deleting 10.0.0.0/24 . tcp . 80-91 removes
//           10.0.0.0/24 . tcp . 80-90): reproduced, exact match preferred.
//   counter add idempotent, create EEXIST, delete ENOENT/EBUSY if referenced.
//   destroy `add` then `delete` semantics, exactly what objects.ts renders.
//   loops   a jump/goto/vmap cycle reachable from a base chain is ELOOP in the
//           kernel (EINVAL here); checked once at the end of the transaction.
// Not reproduced: the 16-level jump depth limit, handle values after a failed
// transaction (the kernel may have consumed some), counter values (always 0).

import { ERRNO, NftApplyError, NftClosedError, NftValidationError, type NftApplyErrorCode, type OpSummary } from './errors';
import type { ChainSnapshot, ElementSnapshot, MapSnapshot, NftBackend, SetSnapshot, TableSnapshot } from './backend';
import {
  parseKey,
  verdictTarget,
  type BaseChainSpec,
  type Chain,
  type Counter,
  type Element,
  type NftMap,
  type NftObject,
  type NftSet,
  type Rule,
  type RuleToken,
  type SetFlag,
  type Verb,
  type Verdict,
} from './objects';
import { Transaction, type Operation } from './transaction';
import { DATATYPE_KIND, compareParsed, type ParsedValue, type SetDatatype } from './values';

interface FakeRule {
  readonly handle: number;
  readonly body: readonly RuleToken[];
  readonly comment?: string;
}

interface FakeChain {
  readonly name: string;
  readonly handle: number;
  base?: Required<BaseChainSpec>;
  rules: FakeRule[];
}

interface FakeElement {
  /** Canonical key text: the element's identity. */
  readonly id: string;
  readonly key: readonly ParsedValue[];
  readonly value?: Verdict;
  readonly comment?: string;
}

interface FakeSet {
  readonly kind: 'set' | 'map';
  readonly name: string;
  readonly handle: number;
  readonly type: readonly SetDatatype[];
  readonly flags: readonly SetFlag[];
  readonly counter: boolean;
  readonly comment?: string;
  elements: ElementStore;
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
  counters: Map<string, { readonly name: string; readonly handle: number }>;
  nextHandle: number;
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
  return { chains, sets, counters: new Map(t.counters), nextHandle: t.nextHandle };
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
  /** Index of the last operation that added a jump/goto/vmap edge (for loop errors). */
  lastLinkOp = -1;

  constructor(table: FakeTable | null) {
    this.table = table;
  }

  apply(op: Operation): void {
    const obj = op.object;
    if (obj.kind === 'table') return this.#table(op.verb);
    const t = this.table ?? fail('ENOENT');
    switch (obj.kind) {
      case 'chain':
        return this.#chain(t, op.verb, obj);
      case 'rule':
        return this.#rule(t, op, obj);
      case 'set':
      case 'map':
        return this.#set(t, op.verb, obj);
      case 'element':
        return this.#element(t, op, obj);
      case 'counter':
        return this.#counter(t, op.verb, obj);
    }
  }

  #table(verb: Verb): void {
    switch (verb) {
      case 'add':
        this.table ??= { chains: new Map(), sets: new Map(), counters: new Map(), nextHandle: 1 };
        return;
      case 'create':
        if (this.table !== null) fail('EEXIST');
        this.table = { chains: new Map(), sets: new Map(), counters: new Map(), nextHandle: 1 };
        return;
      case 'delete':
        if (this.table === null) fail('ENOENT');
        this.table = null;
        return;
      case 'destroy':
        this.table = null;
        return;
      case 'flush':
        if (this.table === null) fail('ENOENT');
        for (const c of this.table.chains.values()) c.rules = [];
        return;
      default:
        fail('EINVAL');
    }
  }

  // --- chains ---------------------------------------------------------------

  #chain(t: FakeTable, verb: Verb, obj: Chain): void {
    const existing = t.chains.get(obj.name);
    if (verb === 'create' && existing !== undefined) fail('EEXIST');
    switch (verb) {
      case 'create':
      case 'add': {
        if (existing === undefined) {
          const base = obj.base === undefined ? undefined : { ...obj.base, policy: obj.base.policy ?? 'accept' };
          t.chains.set(obj.name, { name: obj.name, handle: t.nextHandle++, rules: [], ...(base === undefined ? {} : { base }) });
          return;
        }
        if (obj.base === undefined) return;
        const b = existing.base;
        if (b === undefined) {
          // The kernel checks the policy attribute first (EOPNOTSUPP on a regular chain), then the hook (EEXIST).
          if (obj.base.policy !== undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
          fail('EEXIST');
        }
        if (b.type !== obj.base.type || b.hook !== obj.base.hook || b.priority !== obj.base.priority) {
          fail('EINVAL', 'Could not process rule: Operation not supported');
        }
        if (obj.base.policy !== undefined) existing.base = { ...b, policy: obj.base.policy };
        return;
      }
      case 'flush':
        (existing ?? fail('ENOENT')).rules = [];
        return;
      case 'destroy':
        if (existing === undefined) return;
        return this.#deleteChain(t, obj.name);
      case 'delete':
        if (existing === undefined) fail('ENOENT');
        return this.#deleteChain(t, obj.name);
      default:
        fail('EINVAL');
    }
  }

  #deleteChain(t: FakeTable, name: string): void {
    for (const c of t.chains.values()) {
      for (const r of c.rules) for (const tok of r.body) if (tok.refs.chains.some((x) => x.chain === name)) fail('EBUSY');
    }
    for (const s of t.sets.values()) {
      for (const e of s.elements.values()) if (e.value !== undefined && verdictTarget(e.value)?.chain === name) fail('EBUSY');
    }
    t.chains.delete(name);
  }

  // --- rules ----------------------------------------------------------------

  #rule(t: FakeTable, op: Operation, obj: Rule): void {
    const chain = t.chains.get(obj.chain) ?? fail('ENOENT', `No such file or directory; chain ${obj.chain} does not exist`);
    const at = obj.handle === undefined ? -1 : chain.rules.findIndex((r) => r.handle === obj.handle);
    if (obj.handle !== undefined && at < 0) fail('ENOENT');
    if (op.verb === 'delete') {
      chain.rules.splice(at, 1);
      return;
    }
    const body = obj.body ?? [];
    this.#checkRefs(t, body);
    if (body.some((tok) => tok.refs.chains.length > 0 || tok.refs.sets.some((s) => s.verdictMap))) this.lastLinkOp = op.index;
    const comment = obj.comment === undefined ? {} : { comment: obj.comment };
    switch (op.verb) {
      case 'add':
        chain.rules.splice(at < 0 ? chain.rules.length : at + 1, 0, { handle: t.nextHandle++, body, ...comment });
        return;
      case 'insert':
        chain.rules.splice(at < 0 ? 0 : at, 0, { handle: t.nextHandle++, body, ...comment });
        return;
      case 'replace':
        chain.rules[at] = { handle: obj.handle ?? 0, body, ...comment };
        return;
      default:
        fail('EINVAL');
    }
  }

  #checkRefs(t: FakeTable, body: readonly RuleToken[]): void {
    for (const tok of body) {
      for (const ref of tok.refs.sets) {
        const s = t.sets.get(ref.name) ?? fail('ENOENT', 'No such file or directory');
        if (ref.verdictMap !== (s.kind === 'map')) fail('EINVAL', `${ref.name} is ${s.kind === 'map' ? 'a map' : 'not a map'}`);
        if (ref.key.join(' . ') !== s.type.join(' . ')) {
          fail('EINVAL', `datatype mismatch, expected ${s.type.join(' . ')}, expression has type ${ref.key.join(' . ')}`);
        }
      }
      for (const ref of tok.refs.chains) {
        const c = t.chains.get(ref.chain) ?? fail('ENOENT');
        if (c.base !== undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
      }
      for (const name of tok.refs.counters) if (!t.counters.has(name)) fail('ENOENT');
    }
  }

  // --- sets and maps --------------------------------------------------------

  #set(t: FakeTable, verb: Verb, obj: NftSet | NftMap): void {
    const existing = t.sets.get(obj.name);
    switch (verb) {
      case 'add':
      case 'create':
      case 'destroy':
        if (existing === undefined) {
          if (verb === 'destroy') return;
          t.sets.set(obj.name, {
            kind: obj.kind,
            name: obj.name,
            handle: t.nextHandle++,
            type: obj.type ?? [],
            flags: obj.flags ?? [],
            counter: obj.counter === true,
            ...(obj.comment === undefined ? {} : { comment: obj.comment }),
            elements: new ElementStore((obj.flags ?? []).includes('interval')),
          });
          return;
        }
        if (verb === 'create') fail('EEXIST');
        if (
          existing.kind !== obj.kind ||
          existing.type.join(' . ') !== (obj.type ?? []).join(' . ') ||
          existing.flags.join(',') !== (obj.flags ?? []).join(',') ||
          existing.counter !== (obj.counter === true)
        ) {
          fail('EEXIST');
        }
        if (verb === 'destroy') this.#deleteSet(t, obj.name);
        return;
      case 'delete':
        if (existing === undefined) fail('ENOENT');
        return this.#deleteSet(t, obj.name);
      case 'flush':
        if (existing === undefined || existing.kind !== obj.kind) fail('ENOENT', 'No such file or directory');
        this.#checkMutable(t, existing);
        existing.elements = new ElementStore(existing.flags.includes('interval'));
        return;
      default:
        fail('EINVAL');
    }
  }

  #isBound(t: FakeTable, name: string): boolean {
    for (const c of t.chains.values()) {
      for (const r of c.rules) for (const tok of r.body) if (tok.refs.sets.some((s) => s.name === name)) return true;
    }
    return false;
  }

  #deleteSet(t: FakeTable, name: string): void {
    if (this.#isBound(t, name)) fail('EBUSY');
    t.sets.delete(name);
  }

  #checkMutable(t: FakeTable, s: FakeSet): void {
    if (s.flags.includes('constant') && this.#isBound(t, s.name)) fail('EBUSY');
  }

  // --- elements -------------------------------------------------------------

  #element(t: FakeTable, op: Operation, obj: Element): void {
    const s = t.sets.get(obj.set) ?? fail('ENOENT', 'No such file or directory');
    const key = parseKey(obj.key);
    if (key.length !== s.type.length) fail('EINVAL', `key has ${key.length} fields, ${s.name} has type ${s.type.join(' . ')}`);
    key.forEach((p, i) => {
      const dt = s.type[i];
      if (dt === undefined || DATATYPE_KIND[dt] !== p.kind) fail('EINVAL', `datatype mismatch in field ${i}: ${p.text} is not ${String(dt)}`);
      if (p.lo !== p.hi && !s.flags.includes('interval')) {
        fail('EINVAL', "You must add 'flags interval' to your set declaration if you want to add prefix elements");
      }
    });
    if (op.verb === 'delete') {
      this.#checkMutable(t, s);
      return this.#deleteElement(s, key);
    }
    if (s.kind === 'set' && obj.value !== undefined) fail('EINVAL', 'set is not a map');
    if (s.kind === 'map' && obj.value === undefined) fail('EINVAL');
    if (obj.value !== undefined) {
      const target = verdictTarget(obj.value);
      if (target !== null) {
        const c = t.chains.get(target.chain) ?? fail('ENOENT');
        if (c.base !== undefined) fail('EINVAL', 'Could not process rule: Operation not supported');
        this.lastLinkOp = op.index;
      }
    }
    this.#checkMutable(t, s);
    this.#addElement(s, key, obj, op.verb === 'create');
    if (op.verb === 'destroy') this.#deleteElement(s, key);
  }

  #addElement(s: FakeSet, key: readonly ParsedValue[], obj: Element, exclusive: boolean): void {
    const id = keyText(key);
    const existing = s.elements.get(id);
    if (existing !== undefined) {
      if (exclusive) fail('EEXIST');
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
    s.elements.add({
      id,
      key,
      ...(obj.value === undefined ? {} : { value: obj.value }),
      ...(obj.comment === undefined ? {} : { comment: obj.comment }),
    });
  }

  #deleteElement(s: FakeSet, key: readonly ParsedValue[]): void {
    const id = keyText(key);
    if (s.elements.delete(id)) return;
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

  // --- counters -------------------------------------------------------------

  #counter(t: FakeTable, verb: Verb, obj: Counter): void {
    const existing = t.counters.get(obj.name);
    if (verb === 'create' && existing !== undefined) fail('EEXIST');
    switch (verb) {
      case 'create':
      case 'add':
        if (existing === undefined) t.counters.set(obj.name, { name: obj.name, handle: t.nextHandle++ });
        return;
      case 'delete':
      case 'destroy':
        if (existing === undefined) {
          if (verb === 'destroy') return;
          fail('ENOENT');
        }
        for (const c of t.chains.values()) {
          for (const r of c.rules) for (const tok of r.body) if (tok.refs.counters.includes(obj.name)) fail('EBUSY');
        }
        t.counters.delete(obj.name);
        return;
      default:
        fail('EINVAL');
    }
  }

  // --- loops ----------------------------------------------------------------

  /** True when a jump/goto/vmap cycle is reachable from a base chain. */
  hasLoop(): boolean {
    const t = this.table;
    if (t === null) return false;
    const edges = (c: FakeChain): string[] => {
      const out: string[] = [];
      for (const r of c.rules) {
        for (const tok of r.body) {
          for (const ref of tok.refs.chains) out.push(ref.chain);
          for (const ref of tok.refs.sets) {
            if (!ref.verdictMap) continue;
            for (const e of t.sets.get(ref.name)?.elements.values() ?? []) {
              const target = e.value === undefined ? null : verdictTarget(e.value);
              if (target !== null) out.push(target.chain);
            }
          }
        }
      }
      return out;
    };
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

export class FakeNft implements NftBackend {
  readonly table: string;
  #state: FakeTable | null = null;
  #closed = false;
  /** The last transaction passed to run() (even if it failed), as knftables' fake keeps it. */
  lastTransaction: Transaction | null = null;

  constructor(table: string) {
    this.table = table;
  }

  /** Transactions passed to run() so far, failed ones included. */
  runs = 0;
  #fault: { readonly atRun: number; readonly error: Error; readonly afterCommit: boolean } | null = null;

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

  close(): void {
    this.#closed = true;
  }

  /** A new transaction for this backend's table. */
  newTransaction(): Transaction {
    return new Transaction(this.table);
  }

  /**
   * The state as a batch of `add` commands that recreates it (objects in
   * dependency order and sorted by name; elements sorted by key, except in
   * concatenated interval sets, where they keep insertion order because it
   * decides what the kernel accepts; rules in chain order; no handles).
   * Empty string when the table does not exist.
   */
  dump(): string {
    const t = this.#state;
    if (t === null) return '';
    const tx = new Transaction(this.table);
    tx.add({ kind: 'table' });
    const byName = <T extends { readonly name: string }>(xs: Iterable<T>): T[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const chains = byName(t.chains.values());
    for (const c of chains) tx.add(c.base === undefined ? { kind: 'chain', name: c.name } : { kind: 'chain', name: c.name, base: c.base });
    for (const k of byName(t.counters.values())) tx.add({ kind: 'counter', name: k.name });
    const sets = byName(t.sets.values());
    for (const s of sets) tx.add(this.#setObject(s));
    for (const s of sets) {
      // Insertion order where it matters: in a concatenated interval set an
      // element that contains an older one is accepted only after it.
      const elements = [...s.elements.values()];
      if (!(s.flags.includes('interval') && s.type.length > 1)) elements.sort((a, b) => compareKeys(a.key, b.key));
      for (const e of elements) {
        tx.add({
          kind: 'element',
          set: s.name,
          key: e.key.map((p) => p.text),
          ...(e.value === undefined ? {} : { value: e.value }),
          ...(e.comment === undefined ? {} : { comment: e.comment }),
        });
      }
    }
    for (const c of chains) {
      for (const r of c.rules) tx.add({ kind: 'rule', chain: c.name, body: r.body, ...(r.comment === undefined ? {} : { comment: r.comment }) });
    }
    return tx.toString();
  }

  #setObject(s: FakeSet): NftObject {
    const common = { name: s.name, type: s.type, flags: s.flags, counter: s.counter, ...(s.comment === undefined ? {} : { comment: s.comment }) };
    return s.kind === 'map' ? { kind: 'map', ...common, value: 'verdict' } : { kind: 'set', ...common };
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
      rules: c.rules.map((r) => ({
        handle: r.handle,
        body: r.body.map((tok) => tok.text).join(' '),
        ...(r.comment === undefined ? {} : { comment: r.comment }),
      })),
    }));
    const setSnap = (s: FakeSet): SetSnapshot => ({
      name: s.name,
      type: [...s.type],
      flags: [...s.flags],
      counter: s.counter,
      ...(s.comment === undefined ? {} : { comment: s.comment }),
      elements: [...s.elements.values()].map(
        (e): ElementSnapshot => ({
          key: e.key.map((p) => p.text),
          ...(e.value === undefined ? {} : { value: e.value }),
          ...(e.comment === undefined ? {} : { comment: e.comment }),
          ...(s.counter ? { counter: { packets: 0, bytes: 0 } } : {}),
        }),
      ),
    });
    const all = [...t.sets.values()];
    return {
      family: 'inet',
      name: this.table,
      chains,
      sets: all.filter((s) => s.kind === 'set').map(setSnap),
      maps: all.filter((s) => s.kind === 'map').map((s): MapSnapshot => ({ ...setSnap(s), value: 'verdict' })),
      counters: [...t.counters.values()].map((k) => ({ name: k.name, packets: 0, bytes: 0 })),
    };
  }
}
