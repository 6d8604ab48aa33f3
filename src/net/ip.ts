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

/** Parses an IPv4 or IPv6 address; returns null when it is not one. */
export function parseIp(text: string): IpAddress | null {
  if (isIPv4(text)) {
    let value = 0n;
    for (const part of text.split('.')) value = (value << 8n) | BigInt(Number(part));
    return { family: 4, value };
  }
  if (!isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let tailV4: bigint | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = parseIp(text.slice(lastColon + 1));
    if (v4 === null) return null;
    tailV4 = v4.value;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, null];
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === null || right === '' ? [] : right.split(':');
  const missing = 8 - leftGroups.length - rightGroups.length;
  const groups = right === null ? leftGroups : [...leftGroups, ...Array<string>(missing).fill('0'), ...rightGroups];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
  if (tailV4 !== null) value = (value & ~0xffffffffn) | tailV4;
  return { family: 6, value };
}

/** Canonical text (RFC 5952 for IPv6), so that equal addresses have equal keys. */
export function formatIp(family: IpFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(Number((value >> s) & 0xffffn));
  // Longest run of two or more zero groups becomes "::" (first one on ties).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
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
