// Reads `nft -j list table inet NAME` (nft 1.0.6, json_schema_version 1) into
// a TableSnapshot. Rule expressions are mapped back onto the objects.ts
// helpers, so a listed rule body is printed by the same code that wrote it;
// an expression with no helper prints as `<unsupported ...>`.
//
// What nft 1.0.6's JSON does not carry, and so no snapshot has: table and
// chain comments, the table handle.

import { NftListError } from './errors';
import type { ChainSnapshot, CounterValues, ElementSnapshot, MapSnapshot, RuleSnapshot, SetSnapshot, TableSnapshot } from './backend';
import {
  SET_FLAG_ORDER,
  accept,
  counter,
  ctState,
  drop,
  goto,
  icmpv6Type,
  iifname,
  jump,
  l4proto,
  log,
  matchAddress,
  matchSet,
  namedCounter,
  nfproto,
  oifname,
  port,
  ret,
  unsupported,
  vmap,
  type AddressField,
  type ChainHook,
  type ChainPolicy,
  type ChainType,
  type CtState,
  type Icmpv6Type,
  type MatchField,
  type RuleToken,
  type SetFlag,
  type Verdict,
} from './objects';
import { isL4Protocol } from './values';

type Json = Record<string, unknown>;

function isRecord(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function str(o: Json, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}

function num(o: Json, k: string): number | undefined {
  const v = o[k];
  return typeof v === 'number' ? v : undefined;
}

/** The single key/value of `{ "rule": {...} }`-style objects. */
function tagged(x: unknown): [string, unknown] | null {
  if (!isRecord(x)) return null;
  const keys = Object.keys(x);
  if (keys.length !== 1) return null;
  const k = keys[0] as string;
  return [k, x[k]];
}

// ---------------------------------------------------------------------------
// Values and verdicts
// ---------------------------------------------------------------------------

function valuePart(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (isRecord(v)) {
    const prefix = v['prefix'];
    if (isRecord(prefix)) {
      const addr = str(prefix, 'addr');
      const len = num(prefix, 'len');
      if (addr !== undefined && len !== undefined) return `${addr}/${len}`;
    }
    const range = v['range'];
    if (Array.isArray(range) && range.length === 2) return `${valuePart(range[0])}-${valuePart(range[1])}`;
  }
  throw new NftListError('unsupported value', v);
}

function tryValuePart(v: unknown): string | null {
  try {
    return valuePart(v);
  } catch (err) {
    if (err instanceof NftListError) return null;
    throw err;
  }
}

function keyParts(v: unknown): string[] {
  if (isRecord(v) && Array.isArray(v['concat'])) return v['concat'].map(valuePart);
  return [valuePart(v)];
}

function verdictOf(v: unknown): Verdict | null {
  const t = tagged(v);
  if (t === null) return null;
  const [k, body] = t;
  if ((k === 'accept' || k === 'drop' || k === 'return') && body === null) return k;
  if ((k === 'jump' || k === 'goto') && isRecord(body)) {
    const target = str(body, 'target');
    if (target !== undefined) return k === 'jump' ? { jump: target } : { goto: target };
  }
  return null;
}

function counterValues(v: unknown): CounterValues | undefined {
  if (!isRecord(v)) return undefined;
  return { packets: num(v, 'packets') ?? 0, bytes: num(v, 'bytes') ?? 0 };
}

/** One entry of a set's or map's "elem" list. */
function elementOf(entry: unknown, isMap: boolean): ElementSnapshot {
  let keyJson: unknown = entry;
  let valueJson: unknown;
  if (isMap) {
    if (!Array.isArray(entry) || entry.length !== 2) throw new NftListError('map element is not [key, value]', entry);
    keyJson = entry[0];
    valueJson = entry[1];
  }
  let comment: string | undefined;
  let counters: CounterValues | undefined;
  if (isRecord(keyJson) && isRecord(keyJson['elem'])) {
    const e = keyJson['elem'];
    comment = str(e, 'comment');
    counters = counterValues(e['counter']);
    keyJson = e['val'];
  }
  let value: Verdict | undefined;
  if (isMap) {
    value = verdictOf(valueJson) ?? undefined;
    if (value === undefined) throw new NftListError('unsupported map value', valueJson);
  }
  return {
    key: keyParts(keyJson),
    ...(value === undefined ? {} : { value }),
    ...(comment === undefined ? {} : { comment }),
    ...(counters === undefined ? {} : { counter: counters }),
  };
}

// ---------------------------------------------------------------------------
// Rule expressions
// ---------------------------------------------------------------------------

function fieldOf(x: unknown): MatchField | null {
  const t = tagged(x);
  if (t === null || !isRecord(t[1])) return null;
  const [k, body] = t;
  if (k === 'payload') {
    const proto = str(body, 'protocol');
    const field = str(body, 'field');
    if ((proto === 'ip' || proto === 'ip6') && (field === 'saddr' || field === 'daddr')) return `${proto} ${field}`;
    if (proto === 'th' && (field === 'sport' || field === 'dport')) return `th ${field}`;
  }
  if (k === 'meta' && str(body, 'key') === 'l4proto') return 'meta l4proto';
  return null;
}

function fieldsOf(x: unknown): MatchField[] | null {
  if (isRecord(x) && Array.isArray(x['concat'])) {
    const fields = x['concat'].map(fieldOf);
    return fields.every((f): f is MatchField => f !== null) ? fields : null;
  }
  const f = fieldOf(x);
  return f === null ? null : [f];
}

const CT_STATES: readonly string[] = ['invalid', 'established', 'related', 'new', 'untracked'];
const ICMPV6_TYPES: readonly string[] = ['nd-router-solicit', 'nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert', 'nd-redirect'];

function matchToken(m: Json): RuleToken | null {
  const op = str(m, 'op');
  const left = m['left'];
  const right = m['right'];
  if (op !== '==' && op !== '!=' && op !== 'in') return null;
  const negate = op === '!=';
  if (typeof right === 'string' && right.startsWith('@')) {
    const fields = fieldsOf(left);
    return fields === null || op === 'in' ? null : matchSet(fields, right.slice(1), { negate });
  }
  const l = tagged(left);
  if (l === null || !isRecord(l[1])) return null;
  const [lk, lb] = l;
  if (lk === 'ct' && str(lb, 'key') === 'state' && !negate) {
    const states = Array.isArray(right) ? right : [right];
    if (!states.every((s): s is CtState => typeof s === 'string' && CT_STATES.includes(s))) return null;
    return ctState(...states);
  }
  if (op === 'in') return null;
  if (lk === 'payload') {
    const proto = str(lb, 'protocol');
    const field = str(lb, 'field');
    if ((proto === 'ip' || proto === 'ip6') && (field === 'saddr' || field === 'daddr')) {
      const value = tryValuePart(right);
      return value === null ? null : matchAddress(`${proto} ${field}` as AddressField, value, { negate });
    }
    if (proto === 'icmpv6' && field === 'type' && !negate) {
      const types = typeof right === 'string' ? [right] : isRecord(right) && Array.isArray(right['set']) ? right['set'] : null;
      if (types === null || !types.every((t): t is Icmpv6Type => typeof t === 'string' && ICMPV6_TYPES.includes(t))) return null;
      return icmpv6Type(...types);
    }
    if (isL4Protocol(proto) && (field === 'sport' || field === 'dport') && !negate) {
      if (typeof right === 'number') return port(proto, field, right);
      if (isRecord(right) && Array.isArray(right['range'])) {
        const [a, b] = right['range'];
        if (typeof a === 'number' && typeof b === 'number') return port(proto, field, a, b);
      }
    }
    return null;
  }
  if (lk === 'meta' && !negate && typeof right === 'string') {
    const key = str(lb, 'key');
    if (key === 'l4proto' && isL4Protocol(right)) return l4proto(right);
    if (key === 'nfproto' && (right === 'ipv4' || right === 'ipv6')) return nfproto(right === 'ipv4' ? 4 : 6);
    if (key === 'iifname') return iifname(right);
    if (key === 'oifname') return oifname(right);
  }
  return null;
}

function statementToken(x: unknown): RuleToken {
  const t = tagged(x);
  const shown = (): RuleToken => unsupported(JSON.stringify(x) ?? String(x));
  if (t === null) return shown();
  const [k, body] = t;
  switch (k) {
    case 'match':
      return (isRecord(body) ? matchToken(body) : null) ?? shown();
    case 'accept':
      return body === null ? accept() : shown();
    case 'drop':
      return body === null ? drop() : shown();
    case 'return':
      return body === null ? ret() : shown();
    case 'jump':
    case 'goto': {
      const target = isRecord(body) ? str(body, 'target') : undefined;
      if (target === undefined) return shown();
      return k === 'jump' ? jump(target) : goto(target);
    }
    case 'counter':
      if (typeof body === 'string') return namedCounter(body);
      return body === null || isRecord(body) ? counter() : shown();
    case 'log': {
      if (body === null) return log();
      if (!isRecord(body)) return shown();
      const keys = Object.keys(body);
      const prefix = str(body, 'prefix');
      if (keys.length === 0) return log();
      return keys.length === 1 && prefix !== undefined ? log(prefix) : shown();
    }
    case 'vmap': {
      if (!isRecord(body)) return shown();
      const fields = fieldsOf(body['key']);
      const data = body['data'];
      if (fields === null || typeof data !== 'string' || !data.startsWith('@')) return shown();
      return vmap(fields, data.slice(1));
    }
    default:
      return shown();
  }
}

/** Maps a listed rule's "expr" array onto helper tokens. */
export function ruleTokensFromJson(expr: readonly unknown[]): RuleToken[] {
  return expr.map(statementToken);
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

function flagsOf(o: Json): SetFlag[] {
  const raw = o['flags'];
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  for (const f of list) {
    if (!SET_FLAG_ORDER.includes(f as SetFlag)) throw new NftListError('unsupported set flag', f);
  }
  return SET_FLAG_ORDER.filter((f) => list.includes(f));
}

function setOf(o: Json, isMap: boolean): SetSnapshot {
  const name = str(o, 'name');
  const rawType = o['type'];
  const type = typeof rawType === 'string' ? [rawType] : Array.isArray(rawType) && rawType.every((t) => typeof t === 'string') ? (rawType as string[]) : null;
  if (name === undefined || type === null) throw new NftListError('set without name or type', o);
  const stmts = o['stmt'];
  const hasCounter = Array.isArray(stmts) && stmts.some((s) => tagged(s)?.[0] === 'counter');
  const comment = str(o, 'comment');
  const elem = o['elem'];
  return {
    name,
    type,
    flags: flagsOf(o),
    counter: hasCounter,
    ...(comment === undefined ? {} : { comment }),
    elements: Array.isArray(elem) ? elem.map((e) => elementOf(e, isMap)) : [],
  };
}

const CHAIN_TYPES: readonly string[] = ['filter', 'nat', 'route'];
const CHAIN_HOOKS: readonly string[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

/**
 * The table `name` of family inet from a parsed `nft -j list ...` document,
 * or null when the document holds no such table.
 */
export function parseTableJson(doc: unknown, name: string): TableSnapshot | null {
  const items = isRecord(doc) ? doc['nftables'] : undefined;
  if (!Array.isArray(items)) throw new NftListError('no "nftables" array', doc);
  let found = false;
  const chains = new Map<string, { snap: Omit<ChainSnapshot, 'rules'>; rules: RuleSnapshot[] }>();
  const sets: SetSnapshot[] = [];
  const maps: MapSnapshot[] = [];
  const counters: { name: string; packets: number; bytes: number }[] = [];
  const rules: { chain: string; rule: RuleSnapshot }[] = [];
  for (const item of items) {
    const t = tagged(item);
    if (t === null || !isRecord(t[1])) continue;
    const [kind, o] = t;
    if (str(o, 'family') !== 'inet') continue;
    const tableName = kind === 'table' ? str(o, 'name') : str(o, 'table');
    if (tableName !== name) continue;
    switch (kind) {
      case 'table':
        found = true;
        break;
      case 'chain': {
        const cname = str(o, 'name');
        if (cname === undefined) throw new NftListError('chain without name', o);
        const type = str(o, 'type');
        const hook = str(o, 'hook');
        const prio = num(o, 'prio');
        let snap: Omit<ChainSnapshot, 'rules'> = { name: cname };
        if (type !== undefined && hook !== undefined && prio !== undefined) {
          if (!CHAIN_TYPES.includes(type) || !CHAIN_HOOKS.includes(hook)) throw new NftListError('unsupported chain type or hook', o);
          const policy = str(o, 'policy') ?? 'accept';
          if (policy !== 'accept' && policy !== 'drop') throw new NftListError('unsupported chain policy', o);
          snap = {
            name: cname,
            base: { type: type as ChainType, hook: hook as ChainHook, priority: prio, policy: policy as ChainPolicy },
          };
        }
        chains.set(cname, { snap, rules: [] });
        break;
      }
      case 'rule': {
        const chain = str(o, 'chain');
        const handle = num(o, 'handle');
        const expr = o['expr'];
        if (chain === undefined || handle === undefined || !Array.isArray(expr)) throw new NftListError('rule without chain, handle or expr', o);
        const comment = str(o, 'comment');
        const body = ruleTokensFromJson(expr)
          .map((tok) => tok.text)
          .join(' ');
        rules.push({ chain, rule: { handle, body, ...(comment === undefined ? {} : { comment }) } });
        break;
      }
      case 'set':
        sets.push(setOf(o, false));
        break;
      case 'map': {
        const value = o['map'];
        if (value !== 'verdict') throw new NftListError('only verdict maps are supported', o);
        maps.push({ ...setOf(o, true), value: 'verdict' });
        break;
      }
      case 'counter': {
        const cname = str(o, 'name');
        if (cname === undefined) throw new NftListError('counter without name', o);
        counters.push({ name: cname, packets: num(o, 'packets') ?? 0, bytes: num(o, 'bytes') ?? 0 });
        break;
      }
      default:
        throw new NftListError(`unsupported object kind ${kind}`, o);
    }
  }
  if (!found) return null;
  for (const { chain, rule } of rules) {
    const c = chains.get(chain);
    if (c === undefined) throw new NftListError('rule of an unlisted chain', rule);
    c.rules.push(rule);
  }
  return {
    family: 'inet',
    name,
    chains: [...chains.values()].map((c) => ({ ...c.snap, rules: c.rules })),
    sets,
    maps,
    counters,
  };
}
