// Reads `nft -j list table inet NAME` (nft 1.0.6, json_schema_version 1) into a TableSnapshot. Rule
// expressions are mapped back onto the objects.ts helpers, so a listed rule prints as the same text
// the helpers wrote. Whatever the agent never writes (someone else's set flags, map types, hooks,
// statements, object kinds) is kept as "foreign" text instead of failing: reconcile must be able to
// read its table whatever it holds, in order to replace what it does not recognise.

import { NftListError } from './errors';
import type { ChainSnapshot, ElementSnapshot, ListedBase, MapSnapshot, RuleCounter, SetSnapshot, TableSnapshot } from './backend';
import {
  CT_STATES,
  ICMPV6_TYPES,
  LIMIT_UNITS,
  accept,
  counter,
  ctState,
  drop,
  icmpv6Type,
  jump,
  limit,
  log,
  matchSet,
  ret,
  vmap,
  type CtState,
  type Icmpv6Type,
  type LimitUnit,
  type MatchField,
  type RuleToken,
  type Verdict,
} from './objects';
import { isRecord } from '../../json';

type Json = Record<string, unknown>;

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

function shown(x: unknown): string {
  const text = JSON.stringify(x) ?? String(x);
  return text.length > 200 ? text.slice(0, 200) + '...' : text;
}

// ---------------------------------------------------------------------------
// Values and verdicts (null: not a shape the agent writes)
// ---------------------------------------------------------------------------

function valuePart(v: unknown): string | null {
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
    if (Array.isArray(range) && range.length === 2) {
      const [a, b] = range.map(valuePart);
      if (a !== null && a !== undefined && b !== null && b !== undefined) return `${a}-${b}`;
    }
  }
  return null;
}

function keyParts(v: unknown): string[] | null {
  const parts = isRecord(v) && Array.isArray(v['concat']) ? v['concat'].map(valuePart) : [valuePart(v)];
  return parts.every((p): p is string => p !== null) ? parts : null;
}

function verdictOf(v: unknown): Verdict | null {
  const t = tagged(v);
  if (t === null) return null;
  const [k, body] = t;
  if ((k === 'accept' || k === 'drop' || k === 'return') && body === null) return k;
  if (k === 'jump' && isRecord(body)) {
    const target = str(body, 'target');
    if (target !== undefined) return { jump: target };
  }
  return null;
}

/** One entry of a set's or map's "elem" list; null when it carries what ours never do. */
function elementOf(entry: unknown, isMap: boolean): ElementSnapshot | null {
  let keyJson: unknown = entry;
  let valueJson: unknown;
  if (isMap) {
    if (!Array.isArray(entry) || entry.length !== 2) return null;
    [keyJson, valueJson] = entry;
  }
  // {"elem": {...}} wraps an element with a comment, a timeout or a counter: none of ours has one.
  if (isRecord(keyJson) && 'elem' in keyJson) return null;
  const key = keyParts(keyJson);
  if (key === null) return null;
  if (!isMap) return { key };
  const value = verdictOf(valueJson);
  return value === null ? null : { key, value };
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
    if (proto === 'th' && field === 'dport') return 'th dport';
  }
  if (k === 'meta' && str(body, 'key') === 'l4proto') return 'meta l4proto';
  return null;
}

function fieldsOf(x: unknown): MatchField[] | null {
  const fields = isRecord(x) && Array.isArray(x['concat']) ? x['concat'].map(fieldOf) : [fieldOf(x)];
  return fields.every((f): f is MatchField => f !== null) ? fields : null;
}

function matchToken(m: Json): RuleToken | null {
  const op = str(m, 'op');
  const left = m['left'];
  const right = m['right'];
  if (op === '==' && typeof right === 'string' && right.startsWith('@')) {
    const fields = fieldsOf(left);
    return fields === null ? null : matchSet(fields, right.slice(1));
  }
  const l = tagged(left);
  if (l === null || !isRecord(l[1])) return null;
  const [lk, lb] = l;
  if ((op === 'in' || op === '==') && lk === 'ct' && str(lb, 'key') === 'state') {
    const states = Array.isArray(right) ? right : [right];
    return states.every((s): s is CtState => typeof s === 'string' && (CT_STATES as readonly string[]).includes(s)) ? ctState(...states) : null;
  }
  if (op === '==' && lk === 'payload' && str(lb, 'protocol') === 'icmpv6' && str(lb, 'field') === 'type') {
    const types = typeof right === 'string' ? [right] : isRecord(right) && Array.isArray(right['set']) ? right['set'] : null;
    if (types === null || !types.every((t): t is Icmpv6Type => typeof t === 'string' && (ICMPV6_TYPES as readonly string[]).includes(t))) return null;
    return icmpv6Type(...types);
  }
  return null;
}

function logToken(body: unknown): RuleToken | null {
  if (body === null) return log();
  if (!isRecord(body) || Object.keys(body).some((k) => k !== 'prefix' && k !== 'group')) return null;
  const prefix = str(body, 'prefix');
  const group = num(body, 'group');
  return log({ ...(prefix === undefined ? {} : { prefix }), ...(group === undefined ? {} : { group }) });
}

function limitToken(body: unknown): RuleToken | null {
  if (!isRecord(body) || Object.keys(body).some((k) => k !== 'rate' && k !== 'per' && k !== 'burst')) return null;
  const rate = num(body, 'rate');
  const per = str(body, 'per');
  if (rate === undefined || per === undefined || !(LIMIT_UNITS as readonly string[]).includes(per)) return null;
  return limit(rate, per as LimitUnit, num(body, 'burst') ?? 5);
}

/** The helper token for one listed statement, or null when no helper writes it. */
function statementToken(x: unknown): RuleToken | null {
  const t = tagged(x);
  if (t === null) return null;
  const [k, body] = t;
  switch (k) {
    case 'match':
      return isRecord(body) ? matchToken(body) : null;
    case 'accept':
      return body === null ? accept() : null;
    case 'drop':
      return body === null ? drop() : null;
    case 'return':
      return body === null ? ret() : null;
    case 'jump': {
      const target = isRecord(body) ? str(body, 'target') : undefined;
      return target === undefined ? null : jump(target);
    }
    case 'counter':
      return body === null || (isRecord(body) && Object.keys(body).every((key) => key === 'packets' || key === 'bytes')) ? counter() : null;
    case 'log':
      return logToken(body);
    case 'limit':
      return limitToken(body);
    case 'vmap': {
      if (!isRecord(body)) return null;
      const fields = fieldsOf(body['key']);
      const data = body['data'];
      return fields === null || typeof data !== 'string' || !data.startsWith('@') ? null : vmap(fields, data.slice(1));
    }
    default:
      return null;
  }
}

/** A listed rule's text: helper text per statement, `<foreign ...>` for the rest (and for helpers' invalid tokens). */
export function ruleTextFromJson(expr: readonly unknown[]): string {
  return expr
    .map((x) => {
      const tok = statementToken(x);
      return tok === null || tok.error !== null ? `<foreign ${shown(x)}>` : tok.text;
    })
    .join(' ');
}

/** The values of the rule's first anonymous counter, or null when it has none. */
export function ruleCounterFromJson(expr: readonly unknown[]): RuleCounter | null {
  for (const x of expr) {
    const t = tagged(x);
    if (t === null || t[0] !== 'counter') continue;
    const body = t[1];
    if (body === null) return { packets: 0, bytes: 0 };
    if (!isRecord(body)) continue; // a named counter's reference: not the rule's own
    return { packets: num(body, 'packets') ?? 0, bytes: num(body, 'bytes') ?? 0 };
  }
  return null;
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

/** Keys of a set's listing that carry nothing ours lacks. */
const PLAIN_SET_KEYS: ReadonlySet<string> = new Set(['family', 'name', 'table', 'type', 'handle', 'flags', 'elem', 'map']);

function setOf(o: Json, isMap: boolean): SetSnapshot | null {
  const name = str(o, 'name');
  if (name === undefined) return null;
  const rawType = o['type'];
  const type = typeof rawType === 'string' ? [rawType] : Array.isArray(rawType) ? rawType.map((t) => (typeof t === 'string' ? t : shown(t))) : [shown(rawType)];
  const rawFlags = o['flags'];
  const flags = (Array.isArray(rawFlags) ? rawFlags : rawFlags === undefined ? [] : [rawFlags]).map((f) => (typeof f === 'string' ? f : shown(f)));
  const extra = Object.keys(o).filter((k) => !PLAIN_SET_KEYS.has(k));
  const rawElems = o['elem'];
  const listed = Array.isArray(rawElems) ? rawElems.map((e) => elementOf(e, isMap)) : [];
  const elements = listed.filter((e): e is ElementSnapshot => e !== null);
  const unread = listed.length - elements.length;
  const foreign = [...extra.map((k) => `${k} ${shown(o[k])}`), ...(unread > 0 ? [`${unread} elements of another shape`] : [])];
  return { name, type, flags, ...(foreign.length === 0 ? {} : { foreign: foreign.join(', ') }), elements };
}

function baseOf(o: Json): ListedBase | undefined {
  const type = str(o, 'type');
  const hook = str(o, 'hook');
  const priority = num(o, 'prio');
  if (type === undefined || hook === undefined || priority === undefined) return undefined;
  const dev = o['dev'];
  const devices = typeof dev === 'string' ? [dev] : Array.isArray(dev) ? dev.map(String) : undefined;
  return { type, hook, priority, policy: str(o, 'policy') ?? 'accept', ...(devices === undefined ? {} : { devices }) };
}

/**
 * The table `name` of family inet from a parsed `nft -j list ...` document, or null when the
 * document holds no such table. Throws NftListError only when the document is not a listing at all.
 */
export function parseTableJson(doc: unknown, name: string): TableSnapshot | null {
  const items = isRecord(doc) ? doc['nftables'] : undefined;
  if (!Array.isArray(items)) throw new NftListError('no "nftables" array', doc);
  let found = false;
  const chains = new Map<string, { name: string; base?: ListedBase; rules: string[]; counters: (RuleCounter | null)[] }>();
  const sets: SetSnapshot[] = [];
  const maps: MapSnapshot[] = [];
  const foreign: { type: string; name: string }[] = [];
  const rules: { chain: string; text: string; counter: RuleCounter | null }[] = [];
  for (const item of items) {
    const t = tagged(item);
    if (t === null || !isRecord(t[1])) continue;
    const [kind, o] = t;
    if (kind === 'metainfo' || str(o, 'family') !== 'inet') continue;
    if ((kind === 'table' ? str(o, 'name') : str(o, 'table')) !== name) continue;
    switch (kind) {
      case 'table':
        found = true;
        break;
      case 'chain': {
        const cname = str(o, 'name');
        if (cname === undefined) break;
        const base = baseOf(o);
        chains.set(cname, { name: cname, ...(base === undefined ? {} : { base }), rules: [], counters: [] });
        break;
      }
      case 'rule': {
        const chain = str(o, 'chain');
        const expr = o['expr'];
        if (chain !== undefined) {
          rules.push(Array.isArray(expr) ? { chain, text: ruleTextFromJson(expr), counter: ruleCounterFromJson(expr) } : { chain, text: `<foreign ${shown(o)}>`, counter: null });
        }
        break;
      }
      case 'set': {
        const s = setOf(o, false);
        if (s !== null) sets.push(s);
        break;
      }
      case 'map': {
        const value = o['map'];
        const s = setOf(o, true);
        if (s !== null) maps.push({ ...s, value: typeof value === 'string' ? value : shown(value) });
        break;
      }
      default: {
        const oname = str(o, 'name');
        if (oname !== undefined) foreign.push({ type: kind, name: oname });
      }
    }
  }
  if (!found) return null;
  for (const { chain, text, counter: c } of rules) {
    const listed = chains.get(chain);
    listed?.rules.push(text);
    listed?.counters.push(c);
  }
  const chainList: ChainSnapshot[] = [...chains.values()];
  return { family: 'inet', name, chains: chainList, sets, maps, foreign };
}
