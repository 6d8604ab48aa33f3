// The typed nftables objects of the agent's one `inet` table, their validation, and the only code in
// the product that writes nft command text. Object names pass through validateName and element keys
// through the value parsers of values.ts before they are written, and a rule body can only be made
// of RuleTokens built by the helper constructors below.

import { NftValidationError, type OpSummary } from './errors';
import { SET_DATATYPES, ValueError, parseKeyPart, type KeyPart, type ParsedValue, type SetDatatype } from './values';

export type { KeyPart, L4Protocol, SetDatatype } from './values';

export const FAMILY = 'inet';

/** add creates (a no-op for an identical existing object); flush empties a chain; delete removes. */
export type Verb = 'add' | 'flush' | 'delete';

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/**
 * Longest table/chain/set/map name we accept. The kernel allows 255 bytes since 4.14; 128 leaves
 * room and keeps `nft list` output readable.
 */
export const MAX_NAME_LENGTH = 128;

/** nf_log prefixes are 128 bytes with the NUL. */
export const MAX_LOG_PREFIX_LENGTH = 127;

const NAME_RE = new RegExp(`^[A-Za-z_][A-Za-z0-9_.-]{0,${MAX_NAME_LENGTH - 1}}$`);

/**
 * Words that nft 1.0.6 cannot take as a bare object name: each was tried as a chain, set and map
 * name, as an @set reference and as a jump target with `nft -c`, and failed in at least one of those
 * places; nft has no quoting for names. `destroy` is a keyword from nft 1.0.8 on.
 */
const NFT_KEYWORDS: ReadonlySet<string> = new Set(
  (
    'accept add ah all arp auto-merge bridge bytes cgroup chain comment comp constant continue ' +
    'counter cpu create ct day dccp define delete describe device devices dnat drop dst dup dynamic ' +
    'ecn element elements esp ether exists expires export exthdr fib flags flow flowtable flush ' +
    'frag fwd gc-interval get goto handle hbh hook hour ibriport ibrname icmp icmpv6 igmp iif ' +
    'iifgroup iifname iiftype import include index inet insert interval ip ip6 ipsec jhash jump ' +
    'limit list ll log map mark masquerade meta meter mh missing monitor name netdev nftrace nh ' +
    'notrack numgen obriport obrname offload oif oifgroup oifname oiftype osf packets pkttype ' +
    'policy position priority queue quota random redefine redirect reject rename replace reset ' +
    'return rt rt0 rt2 rtclassid rule ruleset sctp secmark set size skgid skuid snat socket srh ' +
    'symhash synproxy table tcp th time timeout tproxy type typeof udp udplite undefine update vlan ' +
    'vmap xt destroy'
  ).split(' '),
);

/** Why `name` is not a safe nft object name, or null when it is. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (!NAME_RE.test(name)) return `must match [A-Za-z_][A-Za-z0-9_.-]* and be at most ${MAX_NAME_LENGTH} characters`;
  if (NFT_KEYWORDS.has(name)) return 'is an nft keyword';
  return null;
}

export function isValidName(name: unknown): name is string {
  return nameProblem(name) === null;
}

/** Throws NftValidationError unless `name` is a safe object name. */
export function validateName(name: unknown, field = 'name'): string {
  const problem = nameProblem(name);
  if (problem !== null) throw new NftValidationError(field, name, problem);
  return name as string;
}

/**
 * Why `text` cannot be written inside nft double quotes, or null. nft has no escapes in quoted
 * strings, so we accept printable ASCII without `"` and `\` and reject the rest.
 */
function quotedTextProblem(text: unknown, max: number): string | null {
  if (typeof text !== 'string') return 'not a string';
  if (text.length > max) return `longer than ${max} characters`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return `character ${JSON.stringify(text[i])} at ${i}: only printable ASCII is allowed`;
    if (c === 0x22 || c === 0x5c) return `character ${text[i]} at ${i}: quotes and backslashes are not allowed`;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------

export type Verdict = 'accept' | 'drop' | 'return' | { readonly jump: string };

function validateVerdict(v: unknown, field: string): Verdict {
  if (v === 'accept' || v === 'drop' || v === 'return') return v;
  if (typeof v === 'object' && v !== null && Object.keys(v).join() === 'jump') return { jump: validateName((v as { jump: unknown }).jump, `${field}.jump`) };
  throw new NftValidationError(field, JSON.stringify(v) ?? String(v), "must be 'accept', 'drop', 'return' or { jump }");
}

/** The verdict as nft prints it: "accept", "jump in_ab12". */
export function verdictText(v: Verdict): string {
  return typeof v === 'string' ? v : `jump ${v.jump}`;
}

// ---------------------------------------------------------------------------
// Rule tokens: the only way to put text into a rule body
// ---------------------------------------------------------------------------

/** A field that can be matched, alone or in a concatenation, against a set or map. */
export type MatchField = 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' | 'meta l4proto' | 'th dport';
export const MATCH_FIELD_TYPE: Readonly<Record<MatchField, SetDatatype>> = {
  'ip saddr': 'ipv4_addr',
  'ip daddr': 'ipv4_addr',
  'ip6 saddr': 'ipv6_addr',
  'ip6 daddr': 'ipv6_addr',
  'meta l4proto': 'inet_proto',
  'th dport': 'inet_service',
};

export type CtState = 'invalid' | 'established' | 'related' | 'new' | 'untracked';
/** Kernel bit order, which is the order nft lists the states in. */
export const CT_STATES: readonly CtState[] = ['invalid', 'established', 'related', 'new', 'untracked'];

/** ICMPv6 types the agent lets through, in numeric order (133..137, the order nft lists them in). */
export type Icmpv6Type = 'nd-router-solicit' | 'nd-router-advert' | 'nd-neighbor-solicit' | 'nd-neighbor-advert' | 'nd-redirect';
export const ICMPV6_TYPES: readonly Icmpv6Type[] = ['nd-router-solicit', 'nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert', 'nd-redirect'];

export type LimitUnit = 'second' | 'minute' | 'hour' | 'day';
export const LIMIT_UNITS: readonly LimitUnit[] = ['second', 'minute', 'hour', 'day'];

/** What a token does, for the fake's packet evaluator and its reference checks. */
export type RuleExpr =
  | { readonly kind: 'ct'; readonly states: readonly CtState[] }
  | { readonly kind: 'icmpv6'; readonly types: readonly Icmpv6Type[] }
  | { readonly kind: 'lookup'; readonly fields: readonly MatchField[]; readonly set: string }
  | { readonly kind: 'vmap'; readonly fields: readonly MatchField[]; readonly map: string }
  | { readonly kind: 'counter' }
  | { readonly kind: 'log' }
  | { readonly kind: 'limit' }
  | { readonly kind: 'verdict'; readonly verdict: Verdict };

const tokenKey = Symbol('nft.RuleToken');

/**
 * One rendered piece of a rule body ("ip saddr @s4", "counter", "jump in_ab12") and what it does.
 * Built only by the helpers in this module; a helper given a bad argument returns a token carrying
 * the error, which the transaction reports as its first error (no throw at the call site).
 */
export class RuleToken {
  readonly #brand = true;
  readonly text: string;
  readonly expr: RuleExpr | null;
  readonly error: NftValidationError | null;

  constructor(key: symbol, text: string, expr: RuleExpr | null, error: NftValidationError | null = null) {
    if (key !== tokenKey) throw new TypeError('RuleToken is built by the helpers in dataplane/nft/objects.ts');
    this.text = text;
    this.expr = expr;
    this.error = error;
    Object.freeze(this);
  }

  static isToken(x: unknown): x is RuleToken {
    return typeof x === 'object' && x !== null && #brand in x;
  }

  /** The set or map this token looks up, with the key type it expects. */
  get setRef(): { readonly name: string; readonly key: readonly SetDatatype[]; readonly verdictMap: boolean } | null {
    const e = this.expr;
    if (e?.kind === 'lookup') return { name: e.set, key: e.fields.map((f) => MATCH_FIELD_TYPE[f]), verdictMap: false };
    if (e?.kind === 'vmap') return { name: e.map, key: e.fields.map((f) => MATCH_FIELD_TYPE[f]), verdictMap: true };
    return null;
  }

  /** The chain this token jumps to. */
  get jumpTarget(): string | null {
    const e = this.expr;
    return e?.kind === 'verdict' && typeof e.verdict === 'object' ? e.verdict.jump : null;
  }
}

function token(text: string, expr: RuleExpr): RuleToken {
  return new RuleToken(tokenKey, text, expr);
}

/** Runs `build`; a validation failure becomes a poisoned token. */
function guarded(what: string, build: () => RuleToken): RuleToken {
  try {
    return build();
  } catch (err) {
    if (err instanceof NftValidationError) return new RuleToken(tokenKey, `<invalid ${what}>`, null, err);
    throw err;
  }
}

function validateFields(fields: readonly MatchField[]): readonly MatchField[] {
  if (!Array.isArray(fields) || fields.length === 0) throw new NftValidationError('fields', String(fields), 'need at least one field');
  for (const f of fields) if (!Object.prototype.hasOwnProperty.call(MATCH_FIELD_TYPE, f)) throw new NftValidationError('fields', f, 'unknown match field');
  return Object.freeze([...fields]);
}

/** `ct state established,related` (states printed in kernel order). */
export function ctState(...states: CtState[]): RuleToken {
  return guarded('ct state', () => {
    if (states.length === 0) throw new NftValidationError('ct state', '', 'need at least one state');
    for (const s of states) if (!CT_STATES.includes(s)) throw new NftValidationError('ct state', s, 'unknown state');
    const sorted = CT_STATES.filter((s) => states.includes(s));
    return token(`ct state ${sorted.join(',')}`, { kind: 'ct', states: sorted });
  });
}

/** `icmpv6 type nd-neighbor-solicit`, `icmpv6 type { nd-router-solicit, nd-router-advert }`. */
export function icmpv6Type(...types: Icmpv6Type[]): RuleToken {
  return guarded('icmpv6 type', () => {
    if (types.length === 0) throw new NftValidationError('icmpv6 type', '', 'need at least one type');
    for (const t of types) if (!ICMPV6_TYPES.includes(t)) throw new NftValidationError('icmpv6 type', t, 'unknown or unsupported type');
    const sorted = ICMPV6_TYPES.filter((t) => types.includes(t));
    return token(`icmpv6 type ${sorted.length === 1 ? sorted[0] : `{ ${sorted.join(', ')} }`}`, { kind: 'icmpv6', types: sorted });
  });
}

/** Neighbor discovery: what IPv6 needs to work at all, so it is allowed ahead of any policy. */
export function icmpv6NeighborDiscovery(): RuleToken {
  return icmpv6Type('nd-router-solicit', 'nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert');
}

/** `ip saddr @s`, `ip saddr . meta l4proto . th dport @s`. */
export function matchSet(matchFields: readonly MatchField[], set: string): RuleToken {
  return guarded('set match', () => {
    const fields = validateFields(matchFields);
    validateName(set, 'set');
    return token(`${fields.join(' . ')} @${set}`, { kind: 'lookup', fields, set });
  });
}

/** `ip saddr vmap @m`: a verdict map lookup (a terminal statement when the key is found). */
export function vmap(matchFields: readonly MatchField[], map: string): RuleToken {
  return guarded('vmap', () => {
    const fields = validateFields(matchFields);
    validateName(map, 'map');
    return token(`${fields.join(' . ')} vmap @${map}`, { kind: 'vmap', fields, map });
  });
}

/** An anonymous `counter`. */
export function counter(): RuleToken {
  return token('counter', { kind: 'counter' });
}

/** `log`, `log prefix "..."`, `log prefix "..." group 2` (group: to nflog, for a userspace reader). */
export function log(options: { readonly prefix?: string; readonly group?: number } = {}): RuleToken {
  return guarded('log', () => {
    const { prefix, group } = options;
    const parts = ['log'];
    if (prefix !== undefined) {
      const problem = quotedTextProblem(prefix, MAX_LOG_PREFIX_LENGTH);
      if (problem !== null) throw new NftValidationError('log prefix', prefix, problem);
      parts.push(`prefix "${prefix}"`);
    }
    if (group !== undefined) {
      if (!Number.isInteger(group) || group < 0 || group > 65535) throw new NftValidationError('log group', String(group), 'must be 0 to 65535');
      parts.push(`group ${group}`);
    }
    return token(parts.join(' '), { kind: 'log' });
  });
}

/** `limit rate 10/second burst 5 packets`: matches while under the rate (nft lists the burst only when it is not 5). */
export function limit(rate: number, per: LimitUnit, burst = 5): RuleToken {
  return guarded('limit', () => {
    if (!Number.isSafeInteger(rate) || rate <= 0) throw new NftValidationError('limit rate', String(rate), 'must be a positive integer');
    if (!LIMIT_UNITS.includes(per)) throw new NftValidationError('limit per', String(per), `must be one of ${LIMIT_UNITS.join(', ')}`);
    if (!Number.isSafeInteger(burst) || burst < 0) throw new NftValidationError('limit burst', String(burst), 'must be a non-negative integer');
    return token(`limit rate ${rate}/${per} burst ${burst} packets`, { kind: 'limit' });
  });
}

/** A verdict statement: accept, drop, return, jump CHAIN. */
export function verdict(v: Verdict): RuleToken {
  return guarded('verdict', () => {
    const ok = validateVerdict(v, 'verdict');
    return token(verdictText(ok), { kind: 'verdict', verdict: ok });
  });
}

export const accept = (): RuleToken => verdict('accept');
export const drop = (): RuleToken => verdict('drop');
/** `return` (a reserved word in TypeScript, hence the name). */
export const ret = (): RuleToken => verdict('return');
export const jump = (chain: string): RuleToken => verdict({ jump: chain });

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

export type ChainType = 'filter';
export type ChainHook = 'input' | 'forward';
export type ChainPolicy = 'accept' | 'drop';

export interface BaseChainSpec {
  readonly type: ChainType;
  readonly hook: ChainHook;
  readonly priority: number;
  readonly policy: ChainPolicy;
}

/** The table itself. Its name is the transaction's; the agent owns one table. */
export interface Table {
  readonly kind: 'table';
}

/** A chain; with `base` it is attached to a hook. */
export interface Chain {
  readonly kind: 'chain';
  readonly name: string;
  readonly base?: BaseChainSpec;
}

/** A rule, appended to its chain. */
export interface Rule {
  readonly kind: 'rule';
  readonly chain: string;
  readonly body: readonly RuleToken[];
}

export type SetFlag = 'interval';

/** A set, or with `map` a verdict map (`type <key> : verdict`). Type needed for add only. */
export interface NftSet {
  readonly kind: 'set' | 'map';
  readonly name: string;
  /** One datatype, or several for a concatenation (`ipv4_addr . inet_proto . inet_service`). */
  readonly type?: readonly SetDatatype[];
  readonly flags?: readonly SetFlag[];
}

/** An element of a set (no value) or of a verdict map (value required). */
export interface Element {
  readonly kind: 'element';
  /** Name of the set or map. */
  readonly set: string;
  /** One part per datatype of the set's type. */
  readonly key: readonly KeyPart[];
  readonly value?: Verdict;
}

/** Kinds of objects the agent never creates, which it deletes when it finds them in its table. */
export type ForeignKind = 'flowtable' | 'counter' | 'quota' | 'limit' | 'ct helper' | 'ct timeout' | 'ct expectation' | 'secmark' | 'synproxy';
export const FOREIGN_KINDS: readonly ForeignKind[] = ['flowtable', 'counter', 'quota', 'limit', 'ct helper', 'ct timeout', 'ct expectation', 'secmark', 'synproxy'];

/** One of those, by name: it can only be deleted. */
export interface ForeignObject {
  readonly kind: 'foreign';
  readonly type: ForeignKind;
  readonly name: string;
}

export type NftObject = Table | Chain | Rule | NftSet | Element | ForeignObject;
export type ObjectKind = NftObject['kind'];

// ---------------------------------------------------------------------------
// Validation: returns a frozen, canonical copy of the object
// ---------------------------------------------------------------------------

const ALLOWED_VERBS: Readonly<Record<ObjectKind, readonly Verb[]>> = {
  table: ['add', 'delete'],
  chain: ['add', 'flush', 'delete'],
  rule: ['add'],
  set: ['add', 'delete'],
  map: ['add', 'delete'],
  element: ['add', 'delete'],
  foreign: ['delete'],
};

function validateType(type: unknown): readonly SetDatatype[] {
  if (!Array.isArray(type) || type.length === 0 || type.length > 8) throw new NftValidationError('type', String(type), 'must list 1 to 8 datatypes');
  for (const t of type) {
    if (!SET_DATATYPES.includes(t as SetDatatype)) throw new NftValidationError('type', String(t), `must be one of ${SET_DATATYPES.join(', ')}`);
  }
  return Object.freeze([...(type as SetDatatype[])]);
}

function validateFlags(flags: unknown): readonly SetFlag[] {
  if (flags === undefined) return Object.freeze([]);
  if (!Array.isArray(flags) || flags.some((f) => f !== 'interval')) throw new NftValidationError('flags', String(flags), "the only flag is 'interval'");
  return Object.freeze(flags.length === 0 ? [] : (['interval'] as const));
}

/** Canonical text of each key part (throws NftValidationError). */
export function parseKey(key: unknown): readonly ParsedValue[] {
  if (!Array.isArray(key) || key.length === 0 || key.length > 8) throw new NftValidationError('key', String(key), 'must have 1 to 8 parts');
  return key.map((part: unknown, i) => {
    if (typeof part !== 'string' && typeof part !== 'number') throw new NftValidationError(`key[${i}]`, String(part), 'must be a string or number');
    try {
      return parseKeyPart(part);
    } catch (err) {
      if (err instanceof ValueError) throw new NftValidationError(`key[${i}]`, part, err.message, null, { cause: err });
      throw err;
    }
  });
}

/** Checks `obj` for `verb` and returns a frozen copy in canonical form. Throws NftValidationError. */
export function validateObject(verb: Verb, obj: NftObject): NftObject {
  if (typeof obj !== 'object' || obj === null || !Object.prototype.hasOwnProperty.call(ALLOWED_VERBS, obj.kind)) {
    throw new NftValidationError('kind', String((obj as { kind?: unknown } | null)?.kind), 'unknown object kind');
  }
  if (!ALLOWED_VERBS[obj.kind].includes(verb)) throw new NftValidationError('verb', verb, `${verb} ${obj.kind}: not supported`);
  switch (obj.kind) {
    case 'table':
      return Object.freeze({ kind: 'table' });
    case 'chain': {
      const name = validateName(obj.name);
      if (obj.base === undefined || verb !== 'add') return Object.freeze({ kind: 'chain', name });
      const b = obj.base;
      if (b.type !== 'filter') throw new NftValidationError('base.type', String(b.type), 'must be filter');
      if (b.hook !== 'input' && b.hook !== 'forward') throw new NftValidationError('base.hook', String(b.hook), 'must be input or forward');
      if (!Number.isSafeInteger(b.priority) || Math.abs(b.priority) > 0x7fffffff) throw new NftValidationError('base.priority', String(b.priority), 'must be a 32-bit integer');
      if (b.policy !== 'accept' && b.policy !== 'drop') throw new NftValidationError('base.policy', String(b.policy), 'must be accept or drop');
      return Object.freeze({ kind: 'chain', name, base: Object.freeze({ type: b.type, hook: b.hook, priority: b.priority, policy: b.policy }) });
    }
    case 'rule': {
      const chain = validateName(obj.chain, 'chain');
      const body: unknown = obj.body;
      if (!Array.isArray(body) || body.length === 0) throw new NftValidationError('body', String(body), 'a rule needs at least one token');
      body.forEach((t: unknown, i) => {
        if (!RuleToken.isToken(t)) throw new NftValidationError(`body[${i}]`, String(t), 'not a RuleToken from the objects.ts helpers');
        if (t.error !== null) throw t.error;
      });
      return Object.freeze({ kind: 'rule', chain, body: Object.freeze([...(body as RuleToken[])]) });
    }
    case 'set':
    case 'map': {
      const name = validateName(obj.name);
      if (verb === 'delete') return Object.freeze({ kind: obj.kind, name });
      return Object.freeze({ kind: obj.kind, name, type: validateType(obj.type), flags: validateFlags(obj.flags) });
    }
    case 'element': {
      const set = validateName(obj.set, 'set');
      const key = Object.freeze(parseKey(obj.key).map((p) => p.text));
      if (verb === 'delete' || obj.value === undefined) return Object.freeze({ kind: 'element', set, key });
      const value = validateVerdict(obj.value, 'value');
      return Object.freeze({ kind: 'element', set, key, value: typeof value === 'string' ? value : Object.freeze({ ...value }) });
    }
    case 'foreign':
      if (!FOREIGN_KINDS.includes(obj.type)) throw new NftValidationError('type', String(obj.type), `must be one of ${FOREIGN_KINDS.join(', ')}`);
      return Object.freeze({ kind: 'foreign', type: obj.type, name: validateName(obj.name) });
  }
}

/** Short name of an object for errors and logs. */
export function describeObject(obj: NftObject): string {
  switch (obj.kind) {
    case 'table':
      return 'table';
    case 'chain':
    case 'set':
    case 'map':
      return `${obj.kind} ${String(obj.name)}`;
    case 'rule':
      return `rule ${String(obj.chain)}`;
    case 'element':
      return `element ${String(obj.set)} { ${Array.isArray(obj.key) ? obj.key.join(' . ') : '?'} }`;
    case 'foreign':
      return `${String(obj.type)} ${String(obj.name)}`;
  }
}

export function summarize(index: number, verb: Verb, obj: NftObject): OpSummary {
  const valid = typeof obj === 'object' && obj !== null && Object.prototype.hasOwnProperty.call(ALLOWED_VERBS, obj.kind);
  return valid ? { index, verb, kind: obj.kind, name: describeObject(obj) } : { index, verb, kind: 'unknown', name: '<not an nft object>' };
}

// ---------------------------------------------------------------------------
// Rendering: the nft text of one operation on a validated object
// ---------------------------------------------------------------------------

function elementItem(obj: Element, withValue: boolean): string {
  const key = obj.key.join(' . ');
  return withValue && obj.value !== undefined ? `${key} : ${verdictText(obj.value)}` : key;
}

/** The nft command line of one operation. `obj` must come from validateObject. */
export function renderOperation(verb: Verb, obj: NftObject, table: string): string {
  const t = `${FAMILY} ${table}`;
  switch (obj.kind) {
    case 'table':
      return `${verb} table ${t}`;
    case 'chain': {
      if (verb === 'add' && obj.base !== undefined) {
        const b = obj.base;
        return `add chain ${t} ${obj.name} { type ${b.type} hook ${b.hook} priority ${b.priority}; policy ${b.policy}; }`;
      }
      return `${verb} chain ${t} ${obj.name}`;
    }
    case 'rule':
      return `add rule ${t} ${obj.chain} ${obj.body.map((tok) => tok.text).join(' ')}`;
    case 'set':
    case 'map':
      if (verb === 'add') {
        const type = (obj.type ?? []).join(' . ') + (obj.kind === 'map' ? ' : verdict' : '');
        const flags = (obj.flags ?? []).length > 0 ? ` flags ${(obj.flags ?? []).join(',')};` : '';
        return `add ${obj.kind} ${t} ${obj.name} { type ${type};${flags} }`;
      }
      return `${verb} ${obj.kind} ${t} ${obj.name}`;
    case 'element':
      return `${verb} element ${t} ${obj.set} { ${elementItem(obj, verb === 'add')} }`;
    case 'foreign':
      return `${verb} ${obj.type} ${t} ${obj.name}`;
  }
}

/** Which operation wrote columns [from, to] (1-based, inclusive) of a batch line. */
export interface LineSegment {
  readonly op: number;
  readonly from: number;
  readonly to: number;
}

export interface BatchLine {
  readonly text: string;
  readonly segments: readonly LineSegment[];
}

/**
 * Most elements one `add element` command carries. nft 1.0.6 re-examines an interval set for every
 * element command, so 10,000 one-element commands take about 9 s where three 10,000-element commands
 * take 0.4 s (measured in a netns); the cap keeps nft's error echo of a failing line readable.
 */
export const MAX_ELEMENTS_PER_COMMAND = 1000;

/**
 * The batch for a list of validated operations. Element operations are grouped into few commands,
 * `add element inet T s { a, b, c }`:
 *   - within a run of consecutive element operations, those on one set are written together, sets
 *     in order of first appearance. Elements of different sets do not interact (only rules and
 *     chains depend on sets), so this reordering changes no outcome; the fake applies operations in
 *     this same order (see executionOrder), so both report the same failure;
 *   - per set, consecutive operations with one verb share a command; a command is cut before a key
 *     it already holds, so none names an element twice, and after MAX_ELEMENTS_PER_COMMAND elements.
 * `segments` maps columns back to operations, for nft's error locations.
 */
export function renderBatch(ops: readonly { readonly verb: Verb; readonly object: NftObject }[], table: string): BatchLine[] {
  const out: BatchLine[] = [];
  const isElement = (i: number): boolean => ops[i]?.object.kind === 'element';
  let i = 0;
  while (i < ops.length) {
    if (!isElement(i)) {
      const op = ops[i];
      if (op === undefined) break;
      const line = renderOperation(op.verb, op.object, table);
      out.push({ text: line, segments: [{ op: i, from: 1, to: line.length }] });
      i++;
      continue;
    }
    // A run of element operations, split per set (order of first appearance).
    const bySet = new Map<string, number[]>();
    let j = i;
    for (; isElement(j); j++) {
      const obj = ops[j]?.object;
      if (obj?.kind !== 'element') break;
      const list = bySet.get(obj.set);
      if (list === undefined) bySet.set(obj.set, [j]);
      else list.push(j);
    }
    for (const [set, indexes] of bySet) {
      let k = 0;
      while (k < indexes.length) {
        const verb = ops[indexes[k] ?? -1]?.verb ?? 'add';
        let text = `${verb} element ${FAMILY} ${table} ${set} { `;
        const segments: LineSegment[] = [];
        const seen = new Set<string>();
        for (; k < indexes.length && segments.length < MAX_ELEMENTS_PER_COMMAND; k++) {
          const index = indexes[k] ?? -1;
          const next = ops[index];
          if (next === undefined || next.verb !== verb || next.object.kind !== 'element') break;
          const id = next.object.key.join(' . ');
          if (seen.has(id)) break;
          seen.add(id);
          if (segments.length > 0) text += ', ';
          const item = elementItem(next.object, verb === 'add');
          segments.push({ op: index, from: text.length + 1, to: text.length + item.length });
          text += item;
        }
        out.push({ text: text + ' }', segments });
      }
    }
    i = j;
  }
  return out;
}

/** The command that lists the agent's table (parsed by parse-json.ts). */
export function listTableCommand(table: string): string {
  return `list table ${FAMILY} ${validateName(table, 'table')}`;
}
