// Values that go into nft text: addresses, CIDRs, address ranges, ports, port
// ranges and protocol names. Every value is parsed into a numeric interval and
// printed back in the one canonical form nft 1.0.6 lists it in, so that what we
// send, what the fake stores and what the kernel lists compare equal.
//
// Canonical forms (verified against nft 1.0.6 / `nft -j list`):
//   - IPv4: dotted quad; a /32 or an a-a range prints as the address; a range
//     that is exactly a prefix prints as a/len; otherwise "lo-hi".
//   - IPv6: glibc inet_ntop text (lowercase, longest zero run compressed,
//     "::a.b.c.d" / "::ffff:a.b.c.d" for compat/mapped addresses), same prefix
//     folding as IPv4.
//   - inet_service: decimal; "lo-hi" for ranges, never prefix-folded.
//   - inet_proto: tcp/udp/sctp by name only.
//
// No text assembly of nft commands happens here: only single values.

import { formatIp, parseIp } from '../../net/ip';

export type ValueKind = 'ipv4' | 'ipv6' | 'port' | 'proto';

/** The set datatypes the agent uses. */
export type SetDatatype = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';
export const SET_DATATYPES: readonly SetDatatype[] = ['ipv4_addr', 'ipv6_addr', 'inet_proto', 'inet_service'];

export const DATATYPE_KIND: Readonly<Record<SetDatatype, ValueKind>> = {
  ipv4_addr: 'ipv4',
  ipv6_addr: 'ipv6',
  inet_proto: 'proto',
  inet_service: 'port',
};

export type L4Protocol = 'tcp' | 'udp' | 'sctp';
export const L4_PROTOCOLS: Readonly<Record<L4Protocol, number>> = { tcp: 6, udp: 17, sctp: 132 };

/** A parsed value: the closed interval [lo, hi] plus its canonical text. */
export interface ParsedValue {
  readonly kind: ValueKind;
  readonly lo: bigint;
  readonly hi: bigint;
  /** Canonical nft text. */
  readonly text: string;
}

/** Thrown by the parsers; objects.ts turns it into an NftValidationError with the field name. */
export class ValueError extends Error {
  override readonly name = 'ValueError';
}

const BITS: Readonly<Record<'ipv4' | 'ipv6', number>> = { ipv4: 32, ipv6: 128 };

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

/** Strict dotted quad (no leading zeros, which some parsers read as octal). */
function parseIPv4(text: string): bigint {
  const ip = parseIp(text);
  if (ip === null || ip.family !== 4) throw new ValueError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return ip.value;
}

/** IPv6 without zone index. */
export function parseIPv6(text: string): bigint {
  const ip = parseIp(text);
  if (ip === null || ip.family !== 6) throw new ValueError(`not an IPv6 address: ${JSON.stringify(text)}`);
  return ip.value;
}

function formatIPv4(v: bigint): string {
  return formatIp(4, v);
}

/** Same output as glibc inet_ntop(AF_INET6), which is what nft prints. */
export function formatIPv6(v: bigint): string {
  return formatIp(6, v);
}

function addrKind(text: string): 'ipv4' | 'ipv6' {
  return text.includes(':') ? 'ipv6' : 'ipv4';
}

function parseAddr(kind: 'ipv4' | 'ipv6', text: string): bigint {
  return kind === 'ipv4' ? parseIPv4(text) : parseIPv6(text);
}

function formatAddr(kind: 'ipv4' | 'ipv6', v: bigint): string {
  return kind === 'ipv4' ? formatIPv4(v) : formatIPv6(v);
}

/** Prefix length when [lo, hi] is exactly one prefix, else -1. */
export function prefixLength(lo: bigint, hi: bigint, bits: number): number {
  const size = hi - lo + 1n;
  if (size <= 0n || (size & (size - 1n)) !== 0n) return -1;
  if ((lo & (size - 1n)) !== 0n) return -1;
  let k = 0;
  while (1n << BigInt(k) < size) k++;
  return bits - k;
}

function addrIntervalText(kind: 'ipv4' | 'ipv6', lo: bigint, hi: bigint): string {
  if (lo === hi) return formatAddr(kind, lo);
  const len = prefixLength(lo, hi, BITS[kind]);
  if (len >= 0) return `${formatAddr(kind, lo)}/${len}`;
  return `${formatAddr(kind, lo)}-${formatAddr(kind, hi)}`;
}

/**
 * An address, a CIDR (host bits must be zero: we reject rather than silently
 * mask, so a wrong CIDR from upstream is seen) or a range "a-b" with a <= b.
 */
export function parseAddressValue(text: string): ParsedValue {
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const a = text.slice(0, dash);
    const b = text.slice(dash + 1);
    const kind = addrKind(a);
    if (addrKind(b) !== kind) throw new ValueError(`address range mixes families: ${JSON.stringify(text)}`);
    const lo = parseAddr(kind, a);
    const hi = parseAddr(kind, b);
    if (lo > hi) throw new ValueError(`address range is reversed: ${JSON.stringify(text)}`);
    return { kind, lo, hi, text: addrIntervalText(kind, lo, hi) };
  }
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const a = text.slice(0, slash);
    const lenText = text.slice(slash + 1);
    const kind = addrKind(a);
    const bits = BITS[kind];
    if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > bits) {
      throw new ValueError(`bad prefix length in ${JSON.stringify(text)}`);
    }
    const len = Number(lenText);
    const base = parseAddr(kind, a);
    const hostMask = (1n << BigInt(bits - len)) - 1n;
    if ((base & hostMask) !== 0n) throw new ValueError(`CIDR has host bits set: ${JSON.stringify(text)}`);
    const lo = base;
    const hi = base | hostMask;
    return { kind, lo, hi, text: addrIntervalText(kind, lo, hi) };
  }
  const kind = addrKind(text);
  const v = parseAddr(kind, text);
  return { kind, lo: v, hi: v, text: formatAddr(kind, v) };
}

// ---------------------------------------------------------------------------
// Ports and protocols
// ---------------------------------------------------------------------------

const PORT_RE = /^(0|[1-9]\d{0,4})$/;

function parsePort(p: string | number): number {
  const text = typeof p === 'number' ? String(p) : p;
  if (!PORT_RE.test(text) || Number(text) > 65535) throw new ValueError(`not a port (0-65535): ${JSON.stringify(p)}`);
  return Number(text);
}

function portRangeValue(from: number, to: number): ParsedValue {
  const lo = parsePort(from);
  const hi = parsePort(to);
  if (lo > hi) throw new ValueError(`port range is reversed: ${from}-${to}`);
  return { kind: 'port', lo: BigInt(lo), hi: BigInt(hi), text: lo === hi ? String(lo) : `${lo}-${hi}` };
}

function isL4Protocol(p: unknown): p is L4Protocol {
  return p === 'tcp' || p === 'udp' || p === 'sctp';
}

// ---------------------------------------------------------------------------
// Key parts (one field of a set element key)
// ---------------------------------------------------------------------------

/** A key part as callers give it: an address/CIDR/range string, a port or "lo-hi" ports, or a protocol name. */
export type KeyPart = string | number;

/**
 * Parses one key part without knowing the set's type: the shapes do not
 * overlap (protocols are names, ports are digits, addresses have '.' or ':'),
 * so the kind is unambiguous. Whether the kind fits the set is the set's
 * business (the fake checks it; the kernel's nft rejects a mismatch).
 */
export function parseKeyPart(part: KeyPart): ParsedValue {
  if (typeof part === 'number') return portRangeValue(part, part);
  if (isL4Protocol(part)) {
    const n = BigInt(L4_PROTOCOLS[part]);
    return { kind: 'proto', lo: n, hi: n, text: part };
  }
  const m = /^(\d+)(?:-(\d+))?$/.exec(part);
  if (m !== null) {
    const from = parsePort(m[1] ?? '');
    const to = m[2] === undefined ? from : parsePort(m[2]);
    return portRangeValue(from, to);
  }
  if (part.includes('.') || part.includes(':')) return parseAddressValue(part);
  throw new ValueError(`not an address, CIDR, range, port or protocol (tcp/udp/sctp): ${JSON.stringify(part)}`);
}

export function compareParsed(a: ParsedValue, b: ParsedValue): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? -1 : 1;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  if (a.hi !== b.hi) return a.hi < b.hi ? -1 : 1;
  return 0;
}
