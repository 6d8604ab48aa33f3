// IP address and CIDR arithmetic on bigints, shared by the model (validation, canonical forms),
// the compiler (ipBlock except carving) and the rule table (containment checks).
import { isIPv4, isIPv6 } from 'node:net';
import type { IpFamily } from '../api';

export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

export interface Cidr {
  readonly family: IpFamily;
  /** First address of the block (host bits cleared). */
  readonly start: bigint;
  readonly prefix: number;
}

export function familyBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

const IPV4_RE = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;
const HEX_GROUP_RE = /^[0-9A-Fa-f]{1,4}$/;

/** Strict dotted quad: no leading zeros, which some parsers read as octal. */
function parseIPv4(text: string): bigint | null {
  const m = IPV4_RE.exec(text);
  if (m === null) return null;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return null;
    v = (v << 8n) | BigInt(octet);
  }
  return v;
}

/** IPv6 without a zone index, with an optional dotted IPv4 tail. */
function parseIPv6(text: string): bigint | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let tailV4: bigint | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tailV4 = parseIPv4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const left = halves[0] === '' ? [] : (halves[0] ?? '').split(':');
  const right = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] ?? '').split(':')) : [];
  const missing = 8 - left.length - right.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) return null;
  let v = 0n;
  for (const g of [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right]) {
    if (!HEX_GROUP_RE.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return tailV4 === null ? v : (v & ~0xffffffffn) | tailV4;
}

/** Parses an IPv4 or IPv6 address; returns null when it is not one. */
export function parseIp(text: string): IpAddress | null {
  if (isIPv4(text)) {
    const value = parseIPv4(text);
    return value === null ? null : { family: 4, value };
  }
  const value = parseIPv6(text);
  return value === null ? null : { family: 6, value };
}

function formatIPv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

/**
 * Canonical text, so that equal addresses have equal keys everywhere: IPv4 dotted quad; IPv6 as
 * glibc inet_ntop prints it (RFC 5952: lowercase, the longest run of two or more zero groups
 * compressed, the first on ties; IPv4-mapped and -compatible addresses with a dotted tail), which
 * is also what nft lists.
 */
export function formatIp(family: IpFamily, value: bigint): string {
  if (family === 4) return formatIPv4(value);
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) return out + formatIPv4(value & 0xffffffffn);
    out += (words[i] ?? 0).toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip === null ? null : formatIp(ip.family, ip.value);
}

/** Parses "addr/prefix"; host bits are cleared, as the API server's sloppy parser accepts them. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (ip === null || !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  const bits = familyBits(ip.family);
  if (prefix > bits) return null;
  return { family: ip.family, start: ip.value & ~hostMask(bits, prefix), prefix };
}

function hostMask(bits: number, prefix: number): bigint {
  return (1n << BigInt(bits - prefix)) - 1n;
}

export function cidrEnd(cidr: Cidr): bigint {
  return cidr.start | hostMask(familyBits(cidr.family), cidr.prefix);
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.family, cidr.start)}/${cidr.prefix}`;
}

/** True when the whole of inner lies inside outer. */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.prefix >= outer.prefix && inner.start >= outer.start && cidrEnd(inner) <= cidrEnd(outer);
}

export function cidrContainsIp(cidr: Cidr, ip: IpAddress): boolean {
  return cidr.family === ip.family && ip.value >= cidr.start && ip.value <= cidrEnd(cidr);
}

/** The smallest list of CIDRs covering exactly [start, end]. */
export function rangeToCidrs(family: IpFamily, start: bigint, end: bigint): Cidr[] {
  const bits = familyBits(family);
  const out: Cidr[] = [];
  let cur = start;
  while (cur <= end) {
    let size = 0;
    // Grow the block while it stays aligned at cur and inside the range.
    while (size < bits && (cur & ((1n << BigInt(size + 1)) - 1n)) === 0n && cur + (1n << BigInt(size + 1)) - 1n <= end) size++;
    out.push({ family, start: cur, prefix: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

/** cidr minus every except, as disjoint CIDRs in address order. Excepts may overlap or nest. */
export function subtractCidrs(cidr: Cidr, excepts: readonly Cidr[]): Cidr[] {
  const holes = excepts
    .filter((e) => e.family === cidr.family)
    .map((e) => [e.start, cidrEnd(e)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Cidr[] = [];
  let cur = cidr.start;
  const end = cidrEnd(cidr);
  for (const [hs, he] of holes) {
    if (he < cur) continue;
    if (hs > end) break;
    if (hs > cur) out.push(...rangeToCidrs(cidr.family, cur, hs - 1n));
    if (he >= end) return out;
    cur = he + 1n;
  }
  out.push(...rangeToCidrs(cidr.family, cur, end));
  return out;
}

/** Whether text (an address or a CIDR) contains ip. */
export function peerContainsIp(peer: string, ip: IpAddress): boolean {
  const cidr = peer.includes('/') ? parseCidr(peer) : null;
  if (cidr !== null) return cidrContainsIp(cidr, ip);
  const single = parseIp(peer);
  return single !== null && single.family === ip.family && single.value === ip.value;
}
