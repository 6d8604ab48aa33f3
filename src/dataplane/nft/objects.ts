// The typed nftables objects of the agent's one `inet` table, their validation,
// and the only code in the product that writes nft command text.
//
// Everything a user can influence (policy, namespace and pod names end up in
// object names and comments) passes through validateName/validateComment and
// the value parsers in values.ts before it is written, and a rule body can
// only be made of RuleTokens built by the helper constructors below.

import { NftValidationError, type OpSummary } from './errors';
import {
  SET_DATATYPES,
  ValueError,
  isL4Protocol,
  parseAddressValue,
  parseKeyPart,
  portRangeValue,
  type KeyPart,
  type L4Protocol,
  type ParsedValue,
  type SetDatatype,
} from './values';

export type { KeyPart, L4Protocol, SetDatatype } from './values';

export const FAMILY = 'inet';

export type Verb = 'add' | 'create' | 'insert' | 'replace' | 'flush' | 'delete' | 'destroy';
export const VERBS: readonly Verb[] = ['add', 'create', 'insert', 'replace', 'flush', 'delete', 'destroy'];

// ---------------------------------------------------------------------------
// Names and comments
// ---------------------------------------------------------------------------

/**
 * Longest table/chain/set/map/counter name we accept. The kernel allows 255
 * bytes (NFT_NAME_MAXLEN 256 with the NUL) since 4.14; 128 leaves room and
 * keeps `nft list` output readable. Callers deriving names from Kubernetes
 * names (up to 253 characters) must hash them down to fit.
 */
export const MAX_NAME_LENGTH = 128;

/** nft 1.0.6 refuses longer comments ("comment too long, 128 characters maximum allowed"). */
export const MAX_COMMENT_LENGTH = 128;

/** nf_log prefixes are 128 bytes with the NUL. */
export const MAX_LOG_PREFIX_LENGTH = 127;

const NAME_RE = new RegExp(`^[A-Za-z_][A-Za-z0-9_.-]{0,${MAX_NAME_LENGTH - 1}}$`);

/**
 * Words that nft 1.0.6 cannot take as a bare object name: each of these was
 * tried as a chain, set, map and counter name, as an @set reference and as a
 * jump/goto target (rule and map element) with `nft -c`, and failed in at
 * least one of those places ("syntax error, unexpected accept, expecting
 * string"); nft has no quoting for names. Other grammar tokens (in, out,
 * state, port, vm, ...) passed everywhere and are allowed. `destroy` works in
 * 1.0.6 but is a keyword from nft 1.0.8 on.
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
  if (!NAME_RE.test(name)) {
    return `must match [A-Za-z_][A-Za-z0-9_.-]* and be at most ${MAX_NAME_LENGTH} characters`;
  }
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
 * Why `text` cannot be written inside nft double quotes, or null. nft has no
 * escapes in quoted strings (`\"` ends the string), and a newline is kept
 * verbatim, so we do not escape: we accept printable ASCII without `"` and `\`
 * (no control characters, no non-ASCII, which also keeps bytes == characters
 * for the length limit) and reject the rest.
 */
export function quotedTextProblem(text: unknown, max: number): string | null {
  if (typeof text !== 'string') return 'not a string';
  if (text.length > max) return `longer than ${max} characters`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return `character ${JSON.stringify(text[i])} at ${i}: only printable ASCII is allowed`;
    if (c === 0x22 || c === 0x5c) return `character ${text[i]} at ${i}: quotes and backslashes are not allowed`;
  }
  return null;
}

export function validateComment(text: unknown, field = 'comment'): string {
  const problem = quotedTextProblem(text, MAX_COMMENT_LENGTH);
  if (problem !== null) throw new NftValidationError(field, text, problem);
  return text as string;
}

function quote(text: string): string {
  return `"${text}"`;
}

// ---------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------

export type Verdict = 'accept' | 'drop' | 'return' | { readonly jump: string } | { readonly goto: string };

export function verdictTarget(v: Verdict): { readonly kind: 'jump' | 'goto'; readonly chain: string } | null {
  if (typeof v === 'string') return null;
  if ('jump' in v) return { kind: 'jump', chain: v.jump };
  return { kind: 'goto', chain: v.goto };
}

function validateVerdict(v: unknown, field: string): Verdict {
  if (v === 'accept' || v === 'drop' || v === 'return') return v;
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'jump') return { jump: validateName((v as { jump: unknown }).jump, `${field}.jump`) };
    if (keys.length === 1 && keys[0] === 'goto') return { goto: validateName((v as { goto: unknown }).goto, `${field}.goto`) };
  }
  throw new NftValidationError(field, JSON.stringify(v) ?? String(v), "must be 'accept', 'drop', 'return', { jump } or { goto }");
}

/** The verdict as nft prints it: "accept", "jump pod-x". */
export function verdictText(v: Verdict): string {
  if (typeof v === 'string') return v;
  return 'jump' in v ? `jump ${v.jump}` : `goto ${v.goto}`;
}

// ---------------------------------------------------------------------------
// Rule tokens: the only way to put text into a rule body
// ---------------------------------------------------------------------------

/** A field that can be matched, alone or in a concatenation, against a set or map. */
export type MatchField = 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' | 'meta l4proto' | 'th sport' | 'th dport';
export const MATCH_FIELD_TYPE: Readonly<Record<MatchField, SetDatatype>> = {
  'ip saddr': 'ipv4_addr',
  'ip daddr': 'ipv4_addr',
  'ip6 saddr': 'ipv6_addr',
  'ip6 daddr': 'ipv6_addr',
  'meta l4proto': 'inet_proto',
  'th sport': 'inet_service',
  'th dport': 'inet_service',
};

export type AddressField = 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr';
export type CtState = 'invalid' | 'established' | 'related' | 'new' | 'untracked';
/** Kernel bit order, which is the order nft lists the states in. */
const CT_STATE_ORDER: readonly CtState[] = ['invalid', 'established', 'related', 'new', 'untracked'];

/** A reference from a rule to a named set or map, with the key type the rule expects. */
export interface SetRef {
  readonly name: string;
  readonly key: readonly SetDatatype[];
  /** true for `vmap @m` (a verdict map), false for `@s` (a set). */
  readonly verdictMap: boolean;
}

export interface TokenRefs {
  readonly sets: readonly SetRef[];
  readonly chains: readonly { readonly kind: 'jump' | 'goto'; readonly chain: string }[];
  readonly counters: readonly string[];
}

const NO_REFS: TokenRefs = Object.freeze({ sets: [], chains: [], counters: [] });

/**
 * What a token matches, for the checks that keep rules in the form nft lists
 * them in (checkRuleShape).
 */
export type TokenShape =
  | { readonly kind: 'nfproto'; readonly family: 4 | 6 }
  | { readonly kind: 'l4proto' }
  | { readonly kind: 'port'; readonly proto: L4Protocol }
  | { readonly kind: 'icmpv6' }
  | { readonly kind: 'fields'; readonly fields: readonly MatchField[] }
  | { readonly kind: 'other' };
const OTHER: TokenShape = Object.freeze({ kind: 'other' });
const tokenKey = Symbol('nft.RuleToken');

/**
 * One rendered piece of a rule body ("ip saddr @s4", "counter", "jump pod-x")
 * plus what it references. Built only by the helpers in this module; a helper
 * given a bad argument returns a token carrying the error, which the
 * transaction reports as its first error (no throw at the call site).
 */
export class RuleToken {
  readonly #brand = true;
  readonly text: string;
  readonly refs: TokenRefs;
  readonly shape: TokenShape;
  readonly error: NftValidationError | null;

  constructor(key: symbol, text: string, refs: TokenRefs, error: NftValidationError | null = null, shape: TokenShape = OTHER) {
    if (key !== tokenKey) throw new TypeError('RuleToken is built by the helpers in dataplane/nft/objects.ts');
    this.text = text;
    this.refs = refs;
    this.shape = shape;
    this.error = error;
    Object.freeze(this);
  }

  static isToken(x: unknown): x is RuleToken {
    return typeof x === 'object' && x !== null && #brand in x;
  }
}

function token(text: string, refs: TokenRefs = NO_REFS, shape: TokenShape = OTHER): RuleToken {
  return new RuleToken(tokenKey, text, refs, null, shape);
}

/** Runs `build`; a validation/value failure becomes a poisoned token. */
function guarded(what: string, value: unknown, build: () => RuleToken): RuleToken {
  try {
    return build();
  } catch (err) {
    if (err instanceof NftValidationError) return new RuleToken(tokenKey, `<invalid ${what}>`, NO_REFS, err);
    if (err instanceof ValueError) {
      return new RuleToken(tokenKey, `<invalid ${what}>`, NO_REFS, new NftValidationError(what, value, err.message, null, { cause: err }));
    }
    throw err;
  }
}

/** A frozen copy of `fields`, or an NftValidationError. */
function validateFields(fields: readonly MatchField[]): readonly MatchField[] {
  if (!Array.isArray(fields) || fields.length === 0) throw new NftValidationError('fields', String(fields), 'need at least one field');
  for (const f of fields) {
    if (!Object.prototype.hasOwnProperty.call(MATCH_FIELD_TYPE, f)) throw new NftValidationError('fields', f, 'unknown match field');
  }
  return Object.freeze([...fields]);
}

/** `ct state established,related` (states printed in kernel order). */
export function ctState(...states: CtState[]): RuleToken {
  return guarded('ct state', states.join(','), () => {
    if (states.length === 0) throw new NftValidationError('ct state', '', 'need at least one state');
    for (const s of states) if (!CT_STATE_ORDER.includes(s)) throw new NftValidationError('ct state', s, 'unknown state');
    return token(`ct state ${CT_STATE_ORDER.filter((s) => states.includes(s)).join(',')}`);
  });
}

/** `ip saddr 10.0.0.0/8`, `ip6 daddr != fd00::1`: an address, CIDR or range of the field's family. */
export function matchAddress(field: AddressField, value: string, opts: { readonly negate?: boolean } = {}): RuleToken {
  return guarded(field, value, () => {
    validateFields([field]);
    if (MATCH_FIELD_TYPE[field] !== 'ipv4_addr' && MATCH_FIELD_TYPE[field] !== 'ipv6_addr') {
      throw new NftValidationError('field', field, 'not an address field');
    }
    const v = parseAddressValue(value);
    const want = MATCH_FIELD_TYPE[field] === 'ipv4_addr' ? 'ipv4' : 'ipv6';
    if (v.kind !== want) throw new NftValidationError(field, value, `not an ${want} value`);
    return token(`${field} ${opts.negate === true ? '!= ' : ''}${v.text}`, NO_REFS, { kind: 'fields', fields: [field] });
  });
}

/** `ip saddr @s`, `ip saddr . meta l4proto . th dport @s`, `ip saddr != @s`. */
export function matchSet(matchFields: readonly MatchField[], set: string, opts: { readonly negate?: boolean } = {}): RuleToken {
  return guarded('set match', set, () => {
    const fields = validateFields(matchFields);
    validateName(set, 'set');
    const ref: SetRef = { name: set, key: fields.map((f) => MATCH_FIELD_TYPE[f]), verdictMap: false };
    return token(`${fields.join(' . ')} ${opts.negate === true ? '!= ' : ''}@${set}`, { ...NO_REFS, sets: [ref] }, { kind: 'fields', fields });
  });
}

/** `ip saddr vmap @m`, `ip saddr . th dport vmap @m`: a verdict map lookup (a terminal statement). */
export function vmap(matchFields: readonly MatchField[], map: string): RuleToken {
  return guarded('vmap', map, () => {
    const fields = validateFields(matchFields);
    validateName(map, 'map');
    const ref: SetRef = { name: map, key: fields.map((f) => MATCH_FIELD_TYPE[f]), verdictMap: true };
    return token(`${fields.join(' . ')} vmap @${map}`, { ...NO_REFS, sets: [ref] }, { kind: 'fields', fields });
  });
}

/** `meta l4proto tcp`. */
export function l4proto(proto: L4Protocol): RuleToken {
  return guarded('meta l4proto', proto, () => {
    if (!isL4Protocol(proto)) throw new NftValidationError('meta l4proto', String(proto), 'must be tcp, udp or sctp');
    return token(`meta l4proto ${proto}`, NO_REFS, { kind: 'l4proto' });
  });
}

/**
 * `tcp dport 80`, `udp sport 1000-2000`. This form implies the protocol match
 * (nft lists `meta l4proto tcp th dport 80` as `tcp dport 80`, so we write it
 * that way to begin with).
 */
export function port(proto: L4Protocol, field: 'sport' | 'dport', from: number, to: number = from): RuleToken {
  return guarded(`${String(proto)} ${String(field)}`, `${from}-${to}`, () => {
    if (!isL4Protocol(proto)) throw new NftValidationError('protocol', String(proto), 'must be tcp, udp or sctp');
    if (field !== 'sport' && field !== 'dport') throw new NftValidationError('port field', String(field), 'must be sport or dport');
    return token(`${proto} ${field} ${portRangeValue(from, to).text}`, NO_REFS, { kind: 'port', proto });
  });
}

/** ICMPv6 types the agent lets through, in numeric order (the order nft lists them in). */
export type Icmpv6Type = 'nd-router-solicit' | 'nd-router-advert' | 'nd-neighbor-solicit' | 'nd-neighbor-advert' | 'nd-redirect';
const ICMPV6_TYPE_ORDER: readonly Icmpv6Type[] = ['nd-router-solicit', 'nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert', 'nd-redirect'];

/** `icmpv6 type nd-neighbor-solicit`, `icmpv6 type { nd-router-solicit, nd-router-advert }`. */
export function icmpv6Type(...types: Icmpv6Type[]): RuleToken {
  return guarded('icmpv6 type', types.join(','), () => {
    if (types.length === 0) throw new NftValidationError('icmpv6 type', '', 'need at least one type');
    for (const t of types) if (!ICMPV6_TYPE_ORDER.includes(t)) throw new NftValidationError('icmpv6 type', t, 'unknown or unsupported type');
    const sorted = ICMPV6_TYPE_ORDER.filter((t) => types.includes(t));
    const value = sorted.length === 1 ? (sorted[0] ?? '') : `{ ${sorted.join(', ')} }`;
    return token(`icmpv6 type ${value}`, NO_REFS, { kind: 'icmpv6' });
  });
}

/**
 * Neighbor discovery (router and neighbor solicitation/advertisement): what
 * IPv6 needs to work at all, so it is allowed ahead of any policy.
 */
export function icmpv6NeighborDiscovery(): RuleToken {
  return icmpv6Type('nd-router-solicit', 'nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert');
}

/** `meta nfproto ipv4`. */
export function nfproto(family: 4 | 6): RuleToken {
  return guarded('meta nfproto', family, () => {
    if (family !== 4 && family !== 6) throw new NftValidationError('meta nfproto', String(family), 'must be 4 or 6');
    return token(`meta nfproto ipv${family}`, NO_REFS, { kind: 'nfproto', family });
  });
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function ifname(which: 'iifname' | 'oifname', name: string): RuleToken {
  return guarded(which, name, () => {
    if (typeof name !== 'string' || !IFNAME_RE.test(name)) {
      throw new NftValidationError(which, name, 'must be 1-15 characters of [A-Za-z0-9_.-]');
    }
    return token(`${which} ${quote(name)}`);
  });
}

/** `iifname "veth1234"`. */
export function iifname(name: string): RuleToken {
  return ifname('iifname', name);
}

/** `oifname "veth1234"`. */
export function oifname(name: string): RuleToken {
  return ifname('oifname', name);
}

/** An anonymous `counter`. */
export function counter(): RuleToken {
  return token('counter');
}

/** `counter name "c"`: counts into the named counter object. */
export function namedCounter(name: string): RuleToken {
  return guarded('counter name', name, () => {
    validateName(name, 'counter');
    return token(`counter name ${quote(name)}`, { ...NO_REFS, counters: [name] });
  });
}

/** `log` or `log prefix "..."`. */
export function log(prefix?: string): RuleToken {
  return guarded('log prefix', prefix, () => {
    if (prefix === undefined) return token('log');
    const problem = quotedTextProblem(prefix, MAX_LOG_PREFIX_LENGTH);
    if (problem !== null) throw new NftValidationError('log prefix', prefix, problem);
    return token(`log prefix ${quote(prefix)}`);
  });
}

/** A verdict statement: accept, drop, return, jump CHAIN, goto CHAIN. */
export function verdict(v: Verdict): RuleToken {
  return guarded('verdict', v, () => {
    const ok = validateVerdict(v, 'verdict');
    const target = verdictTarget(ok);
    return token(verdictText(ok), target === null ? NO_REFS : { ...NO_REFS, chains: [target] });
  });
}

export const accept = (): RuleToken => verdict('accept');
export const drop = (): RuleToken => verdict('drop');
/** `return` (a reserved word in TypeScript, hence the name). */
export const ret = (): RuleToken => verdict('return');
export const jump = (chain: string): RuleToken => verdict({ jump: chain });
export const goto = (chain: string): RuleToken => verdict({ goto: chain });

/**
 * A listed expression this module has no helper for (parse-json.ts). It prints
 * as a marker so snapshots show it, and it cannot be sent back to nft.
 */
export function unsupported(description: string): RuleToken {
  const shown = description.length > 200 ? description.slice(0, 200) + '...' : description;
  return new RuleToken(
    tokenKey,
    `<unsupported ${shown}>`,
    NO_REFS,
    new NftValidationError('expression', shown, 'not expressible with the rule helpers'),
  );
}

/**
 * Refuses token combinations that nft would rewrite when listing the rule, so
 * that what we send is what we read back (checked against nft 1.0.6):
 *   - `meta nfproto ipv4` before an `ip ...` match (or ipv6 / `ip6 ...`) is an
 *     implied dependency: nft drops it from the listing (other family: nft
 *     rejects the rule);
 *   - `meta l4proto P` before `P dport ...` is likewise dropped, and before a
 *     `th dport` field in a set lookup nft lists the field as `P dport`;
 *   - two port matches of one protocol are merged and reordered
 *     (`tcp dport 80 tcp sport 1` lists as `tcp sport 1 tcp dport 80`); of
 *     two protocols, nft rejects them ("conflicting protocols"), as it does
 *     ip and ip6 matches in one rule.
 * Each has a shorter equivalent: leave the dependency out, use one port match.
 */
function checkRuleShape(body: readonly RuleToken[]): void {
  const familyOf = (t: RuleToken): (4 | 6)[] => {
    if (t.shape.kind === 'icmpv6') return [6];
    if (t.shape.kind !== 'fields') return [];
    return t.shape.fields.flatMap((f): (4 | 6)[] => (f.startsWith('ip6 ') ? [6] : f.startsWith('ip ') ? [4] : []));
  };
  let family: 4 | 6 | null = null;
  body.forEach((tok, i) => {
    for (const f of familyOf(tok)) {
      family ??= f;
      if (f !== family) throw new NftValidationError(`body[${i}]`, tok.text, 'mixes IPv4 and IPv6 matches in one rule (nft: conflicting protocols)');
    }
  });
  let l4: string | null = null;
  body.forEach((tok, i) => {
    const later = body.slice(i + 1);
    const laterFields = later.flatMap((t) => (t.shape.kind === 'fields' ? t.shape.fields : []));
    switch (tok.shape.kind) {
      case 'nfproto': {
        const laterFamilies = new Set(later.flatMap(familyOf));
        if (laterFamilies.has(tok.shape.family)) {
          throw new NftValidationError(`body[${i}]`, tok.text, 'implied by a later match of that family (nft drops it); leave it out');
        }
        if (laterFamilies.size > 0) throw new NftValidationError(`body[${i}]`, tok.text, 'conflicts with a later match of the other family');
        break;
      }
      case 'l4proto':
        if (later.some((t) => t.shape.kind === 'port' || t.shape.kind === 'icmpv6') || laterFields.some((f) => f.startsWith('th '))) {
          throw new NftValidationError(`body[${i}]`, tok.text, 'nft folds it into a later port match; match the protocol there (tcp dport, or meta l4proto in the set key)');
        }
        break;
      case 'port':
      case 'icmpv6': {
        const proto = tok.shape.kind === 'port' ? tok.shape.proto : 'icmpv6';
        if (l4 !== null) {
          throw new NftValidationError(
            `body[${i}]`,
            tok.text,
            l4 === proto ? 'second match of one protocol header (nft merges and reorders them)' : 'matches of two L4 protocols never match together',
          );
        }
        l4 = proto;
        break;
      }
      default:
        break;
    }
  });
}

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

export type ChainType = 'filter' | 'nat' | 'route';
export type ChainHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type ChainPolicy = 'accept' | 'drop';

/** Standard priorities (what nft's names stand for in the inet family). */
export const PRIORITY = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 } as const;

export interface BaseChainSpec {
  readonly type: ChainType;
  readonly hook: ChainHook;
  readonly priority: number;
  /** Default accept when the chain is created; when adding an existing chain, omitted leaves it alone. */
  readonly policy?: ChainPolicy;
}

/**
 * The table itself. Its name is the transaction's; the agent owns one table.
 * (No table comment: nft 1.0.6's JSON listing does not report it.)
 */
export interface Table {
  readonly kind: 'table';
}

/** A chain; with `base` it is attached to a hook. (No chain comment: nft 1.0.6's JSON listing drops it.) */
export interface Chain {
  readonly kind: 'chain';
  readonly name: string;
  readonly base?: BaseChainSpec;
}

/**
 * A rule. `handle` positions add/insert (after/before that rule) and names the
 * rule for replace/delete. `comment` is the stable identity the dataplane uses
 * to find the handle of a rule it wrote (see findRuleByComment in backend.ts).
 */
export interface Rule {
  readonly kind: 'rule';
  readonly chain: string;
  readonly body?: readonly RuleToken[];
  readonly comment?: string;
  readonly handle?: number;
}

export type SetFlag = 'constant' | 'interval';
/** Kernel bit order (NFT_SET_CONSTANT=2, NFT_SET_INTERVAL=4): the order nft lists flags in. */
export const SET_FLAG_ORDER: readonly SetFlag[] = ['constant', 'interval'];

export interface NftSet {
  readonly kind: 'set';
  readonly name: string;
  /**
   * One datatype, or several for a concatenation (`ipv4_addr . inet_proto . inet_service`).
   * Required for add/create/destroy; not needed for delete/flush.
   */
  readonly type?: readonly SetDatatype[];
  readonly flags?: readonly SetFlag[];
  /** Per-element counters. */
  readonly counter?: boolean;
  readonly comment?: string;
}

/** A verdict map: `type <key> : verdict`. */
export interface NftMap {
  readonly kind: 'map';
  readonly name: string;
  /** Key datatypes; required for add/create/destroy. */
  readonly type?: readonly SetDatatype[];
  /** The only supported value type; the default. */
  readonly value?: 'verdict';
  readonly flags?: readonly SetFlag[];
  readonly counter?: boolean;
  readonly comment?: string;
}

/** An element of a set (no value) or of a verdict map (value required). */
export interface Element {
  readonly kind: 'element';
  /** Name of the set or map. */
  readonly set: string;
  /** One part per datatype of the set's type. */
  readonly key: readonly KeyPart[];
  readonly value?: Verdict;
  readonly comment?: string;
}

/** A named counter object. */
export interface Counter {
  readonly kind: 'counter';
  readonly name: string;
}

export type NftObject = Table | Chain | Rule | NftSet | NftMap | Element | Counter;
export type ObjectKind = NftObject['kind'];

// ---------------------------------------------------------------------------
// Validation: returns a frozen, canonical copy of the object
// ---------------------------------------------------------------------------

const ALLOWED_VERBS: Readonly<Record<ObjectKind, readonly Verb[]>> = {
  table: ['add', 'create', 'flush', 'delete', 'destroy'],
  chain: ['add', 'create', 'flush', 'delete', 'destroy'],
  // destroy rule needs kernel support nft 1.0.6 lacks, and cannot be emulated
  // (the add+delete trick needs a handle for the new rule).
  rule: ['add', 'insert', 'replace', 'delete'],
  set: ['add', 'create', 'flush', 'delete', 'destroy'],
  map: ['add', 'create', 'flush', 'delete', 'destroy'],
  element: ['add', 'create', 'delete', 'destroy'],
  counter: ['add', 'create', 'delete', 'destroy'],
};

const CHAIN_TYPES: readonly ChainType[] = ['filter', 'nat', 'route'];
const CHAIN_HOOKS: readonly ChainHook[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

function optionalComment(c: unknown, field = 'comment'): string | undefined {
  return c === undefined ? undefined : validateComment(c, field);
}

function validateType(type: unknown): readonly SetDatatype[] {
  if (!Array.isArray(type) || type.length === 0 || type.length > 8) {
    throw new NftValidationError('type', String(type), 'must list 1 to 8 datatypes');
  }
  for (const t of type) {
    if (!SET_DATATYPES.includes(t as SetDatatype)) {
      throw new NftValidationError('type', String(t), `must be one of ${SET_DATATYPES.join(', ')}`);
    }
  }
  return Object.freeze([...(type as SetDatatype[])]);
}

function validateFlags(flags: unknown): readonly SetFlag[] {
  if (flags === undefined) return Object.freeze([]);
  if (!Array.isArray(flags)) throw new NftValidationError('flags', String(flags), 'must be an array');
  for (const f of flags) {
    if (!SET_FLAG_ORDER.includes(f as SetFlag)) throw new NftValidationError('flags', String(f), 'must be constant or interval');
  }
  return Object.freeze(SET_FLAG_ORDER.filter((f) => flags.includes(f)));
}

function validateHandle(h: unknown): number {
  if (typeof h !== 'number' || !Number.isSafeInteger(h) || h <= 0) {
    throw new NftValidationError('handle', String(h), 'must be a positive integer');
  }
  return h;
}

/** Canonical text of each key part (throws NftValidationError). */
export function parseKey(key: unknown): readonly ParsedValue[] {
  if (!Array.isArray(key) || key.length === 0 || key.length > 8) {
    throw new NftValidationError('key', String(key), 'must have 1 to 8 parts');
  }
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

/**
 * Checks `obj` for `verb` and returns a frozen copy in canonical form (key parts
 * and addresses rewritten the way nft lists them). Throws NftValidationError.
 */
export function validateObject(verb: Verb, obj: NftObject): NftObject {
  if (typeof obj !== 'object' || obj === null || !Object.prototype.hasOwnProperty.call(ALLOWED_VERBS, obj.kind)) {
    throw new NftValidationError('kind', String((obj as { kind?: unknown } | null)?.kind), 'unknown object kind');
  }
  if (!ALLOWED_VERBS[obj.kind].includes(verb)) {
    const why = obj.kind === 'rule' && verb === 'destroy' ? 'nft 1.0.6 has no destroy, and a rule cannot be emulated' : 'not supported';
    throw new NftValidationError('verb', verb, `${verb} ${obj.kind}: ${why}`);
  }
  switch (obj.kind) {
    case 'table':
      return Object.freeze({ kind: 'table' });
    case 'chain': {
      const name = validateName(obj.name);
      if (obj.base === undefined || verb === 'delete' || verb === 'flush' || verb === 'destroy') {
        return Object.freeze({ kind: 'chain', name });
      }
      const b = obj.base;
      if (!CHAIN_TYPES.includes(b.type)) throw new NftValidationError('base.type', String(b.type), 'must be filter, nat or route');
      if (!CHAIN_HOOKS.includes(b.hook)) throw new NftValidationError('base.hook', String(b.hook), 'unknown hook');
      if (!Number.isSafeInteger(b.priority) || Math.abs(b.priority) > 0x7fffffff) {
        throw new NftValidationError('base.priority', String(b.priority), 'must be a 32-bit integer');
      }
      if (b.policy !== undefined && b.policy !== 'accept' && b.policy !== 'drop') {
        throw new NftValidationError('base.policy', String(b.policy), 'must be accept or drop');
      }
      const base: BaseChainSpec = Object.freeze(
        b.policy === undefined
          ? { type: b.type, hook: b.hook, priority: b.priority }
          : { type: b.type, hook: b.hook, priority: b.priority, policy: b.policy },
      );
      return Object.freeze({ kind: 'chain', name, base });
    }
    case 'rule': {
      const chain = validateName(obj.chain, 'chain');
      const handle = obj.handle === undefined ? undefined : validateHandle(obj.handle);
      if ((verb === 'replace' || verb === 'delete') && handle === undefined) {
        throw new NftValidationError('handle', 'undefined', `${verb} rule needs the rule's handle`);
      }
      if (verb === 'delete') return Object.freeze({ kind: 'rule', chain, handle });
      const body = obj.body;
      if (!Array.isArray(body) || body.length === 0) throw new NftValidationError('body', String(body), 'a rule needs at least one token');
      body.forEach((t: unknown, i) => {
        if (!RuleToken.isToken(t)) throw new NftValidationError(`body[${i}]`, String(t), 'not a RuleToken from the objects.ts helpers');
        if (t.error !== null) throw t.error;
      });
      checkRuleShape(body as readonly RuleToken[]);
      const comment = optionalComment(obj.comment);
      const out: Rule = { kind: 'rule', chain, body: Object.freeze([...body]) };
      return Object.freeze({
        ...out,
        ...(comment === undefined ? {} : { comment }),
        ...(handle === undefined ? {} : { handle }),
      });
    }
    case 'set':
    case 'map': {
      const name = validateName(obj.name);
      if (verb === 'delete' || verb === 'flush') {
        // Only the name is rendered; `delete set` also deletes a map of that name (as in nft).
        return Object.freeze({ kind: obj.kind, name });
      }
      const type = validateType(obj.type);
      const flags = validateFlags(obj.flags);
      if (obj.counter !== undefined && typeof obj.counter !== 'boolean') throw new NftValidationError('counter', String(obj.counter), 'must be boolean');
      const comment = optionalComment(obj.comment);
      const common = { name, type, flags, counter: obj.counter === true, ...(comment === undefined ? {} : { comment }) };
      if (obj.kind === 'map') {
        const value: unknown = obj.value ?? 'verdict';
        if (value !== 'verdict') throw new NftValidationError('value', String(value), 'only verdict maps are supported');
        return Object.freeze({ kind: 'map', ...common, value: 'verdict' });
      }
      return Object.freeze({ kind: 'set', ...common });
    }
    case 'element': {
      const set = validateName(obj.set, 'set');
      const key = Object.freeze(parseKey(obj.key).map((p) => p.text));
      if (verb === 'delete') return Object.freeze({ kind: 'element', set, key });
      const value = obj.value === undefined ? undefined : validateVerdict(obj.value, 'value');
      const comment = optionalComment(obj.comment);
      return Object.freeze({
        kind: 'element',
        set,
        key,
        ...(value === undefined ? {} : { value: typeof value === 'string' ? value : Object.freeze({ ...value }) }),
        ...(comment === undefined ? {} : { comment }),
      });
    }
    case 'counter':
      return Object.freeze({ kind: 'counter', name: validateName(obj.name) });
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
    case 'counter':
      return `${obj.kind} ${String(obj.name)}`;
    case 'rule':
      return `rule ${String(obj.chain)}${obj.handle === undefined ? '' : ` handle ${obj.handle}`}${obj.comment === undefined ? '' : ` comment ${JSON.stringify(obj.comment)}`}`;
    case 'element':
      return `element ${String(obj.set)} { ${Array.isArray(obj.key) ? obj.key.join(' . ') : '?'} }`;
  }
}

export function summarize(index: number, verb: Verb, obj: NftObject): OpSummary {
  const valid = typeof obj === 'object' && obj !== null && Object.prototype.hasOwnProperty.call(ALLOWED_VERBS, obj.kind);
  return valid ? { index, verb, kind: obj.kind, name: describeObject(obj) } : { index, verb, kind: 'unknown', name: '<not an nft object>' };
}

// ---------------------------------------------------------------------------
// Rendering: the nft text of one operation on a validated object
// ---------------------------------------------------------------------------

function setDefinition(obj: NftSet | NftMap): string {
  const type = (obj.type ?? []).join(' . ') + (obj.kind === 'map' ? ' : verdict' : '');
  const parts = [`type ${type};`];
  const flags = obj.flags ?? [];
  if (flags.length > 0) parts.push(`flags ${flags.join(',')};`);
  if (obj.counter === true) parts.push('counter;');
  if (obj.comment !== undefined) parts.push(`comment ${quote(obj.comment)};`);
  return `{ ${parts.join(' ')} }`;
}

/** One element inside `{ ... }`: key, comment, value (delete: key only). */
function elementItem(obj: Element, withValue: boolean): string {
  let text = obj.key.join(' . ');
  if (withValue && obj.comment !== undefined) text += ` comment ${quote(obj.comment)}`;
  if (withValue && obj.value !== undefined) text += ` : ${verdictText(obj.value)}`;
  return text;
}

function elementBody(obj: Element, withValue: boolean): string {
  return `{ ${elementItem(obj, withValue)} }`;
}

/**
 * The nft command line(s) of one operation. `obj` must come from
 * validateObject. Usually one line; `destroy` is two, because nft 1.0.6 has no
 * destroy command: we write `add X` then `delete X` in the same batch, which
 * deletes X if it exists and is a no-op otherwise. Kernel consequences of that
 * emulation, which the fake reproduces:
 *   - destroy set/map: the add carries the given definition, so it fails with
 *     EEXIST if a set of that name exists with another type/flags/counter;
 *   - destroy element: the add carries the key (and the value, for a map), so
 *     it fails with EEXIST if the map holds the key with another value or if
 *     the key overlaps another interval element; for a map a value is required
 *     (without it the add fails with EINVAL);
 *   - destroy chain/table/counter: none; delete still fails with EBUSY if the
 *     object is referenced.
 */
export function renderOperation(verb: Verb, obj: NftObject, table: string): string[] {
  const t = `${FAMILY} ${table}`;
  if (verb === 'destroy') {
    const addObj: NftObject = obj.kind === 'chain' ? { kind: 'chain', name: obj.name } : obj;
    return [...renderOperation('add', addObj, table), ...renderOperation('delete', obj, table)];
  }
  switch (obj.kind) {
    case 'table':
      return [`${verb} table ${t}`];
    case 'chain': {
      if ((verb === 'add' || verb === 'create') && obj.base !== undefined) {
        const b = obj.base;
        const policy = b.policy === undefined ? '' : ` policy ${b.policy};`;
        return [`${verb} chain ${t} ${obj.name} { type ${b.type} hook ${b.hook} priority ${b.priority};${policy} }`];
      }
      return [`${verb} chain ${t} ${obj.name}`];
    }
    case 'rule': {
      const head = `${verb} rule ${t} ${obj.chain}${obj.handle === undefined ? '' : ` handle ${obj.handle}`}`;
      if (verb === 'delete') return [head];
      const body = (obj.body ?? []).map((tok) => tok.text).join(' ');
      return [`${head} ${body}${obj.comment === undefined ? '' : ` comment ${quote(obj.comment)}`}`];
    }
    case 'set':
    case 'map':
      if (verb === 'add' || verb === 'create') return [`${verb} ${obj.kind} ${t} ${obj.name} ${setDefinition(obj)}`];
      return [`${verb} ${obj.kind} ${t} ${obj.name}`];
    case 'element':
      return [`${verb} element ${t} ${obj.set} ${elementBody(obj, verb !== 'delete')}`];
    case 'counter':
      return [`${verb} counter ${t} ${obj.name}`];
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
 * Most elements one `add element` command carries. nft 1.0.6 re-examines an
 * interval set for every element command, so 10,000 one-element commands take
 * about 9 s where three 10,000-element commands take 0.4 s (measured in a
 * netns); the cap keeps nft's error echo of a failing line readable.
 */
export const MAX_ELEMENTS_PER_COMMAND = 1000;

/**
 * The batch for a list of validated operations. Element operations (add,
 * create, delete) are grouped into few commands, `add element inet T s { a,
 * b comment "x", c }`:
 *   - within a run of consecutive element operations, those on one set are
 *     written together, sets in order of first appearance. Elements of
 *     different sets do not interact (only rules and chains depend on sets),
 *     so this reordering changes no outcome; the fake applies operations in
 *     this same order (see executionOrder), so both report the same failure;
 *   - per set, consecutive operations with one verb share a command; a
 *     command is cut before a key it already holds, so none names an element
 *     twice, and after MAX_ELEMENTS_PER_COMMAND elements.
 * nft processes the elements of a command in order, as separate commands, in
 * one transaction. `segments` maps columns back to operations, for nft's error
 * locations.
 */
export function renderBatch(ops: readonly { readonly verb: Verb; readonly object: NftObject }[], table: string): BatchLine[] {
  const out: BatchLine[] = [];
  const isGroupable = (i: number): boolean => {
    const op = ops[i];
    return op !== undefined && op.object.kind === 'element' && (op.verb === 'add' || op.verb === 'create' || op.verb === 'delete');
  };
  let i = 0;
  while (i < ops.length) {
    if (!isGroupable(i)) {
      const op = ops[i];
      if (op === undefined) break;
      for (const line of renderOperation(op.verb, op.object, table)) out.push({ text: line, segments: [{ op: i, from: 1, to: line.length }] });
      i++;
      continue;
    }
    // A run of element operations, split per set (order of first appearance).
    const bySet = new Map<string, number[]>();
    let j = i;
    for (; isGroupable(j); j++) {
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
          const item = elementItem(next.object, verb !== 'delete');
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

