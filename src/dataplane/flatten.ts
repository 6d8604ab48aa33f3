// Flattens what a group of rules allows into the few sets one packet is looked up in. The kernel
// refuses overlapping elements in interval sets, so every set is made of disjoint elements: peers
// and ports are unions of intervals, and (peer, port) pairs are unions of rectangles cut into
// disjoint ones. The result depends only on the allowed space, not on how the rules wrote it.
import type { IpFamily, Protocol } from '../api';
import type { AllowSpan } from '../ruletable';
import { familyBits, formatIp, parseCidr, parseIp } from '../net/ip';

/** Key parts of set elements, in nft's own text (address, CIDR or range; protocol; port or range). */
export type KeyParts = readonly string[];

export interface FlatAllowSet {
  /** Some rule allows every peer on every port. */
  readonly allowAll: boolean;
  /** protocol . port: every peer on these ports. */
  readonly anyPeerPorts: KeyParts[];
  /** address: these peers on every port, per family. */
  readonly peersAllPorts: Record<IpFamily, KeyParts[]>;
  /** block (CIDR or address range) . protocol . port, per family. */
  readonly peerPorts: Record<IpFamily, KeyParts[]>;
  /**
   * One address . protocol . port range, per family: pod peers on a port range, apart from the
   * blocks, because they are many (one per peer pod) and an interval set's lookup costs grow with
   * its size: a packet from a block need not walk them.
   */
  readonly podPortRanges: Record<IpFamily, KeyParts[]>;
}

interface Interval<T> {
  lo: T;
  hi: T;
}

interface Rect {
  lo: bigint;
  hi: bigint;
  ports: Interval<number>;
}

const PROTOCOL_NAMES: Record<Protocol, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function peerInterval(peer: string): { family: IpFamily; lo: bigint; hi: bigint } | null {
  if (peer.includes('/')) {
    const cidr = parseCidr(peer);
    if (cidr === null) return null;
    const size = 1n << BigInt(familyBits(cidr.family) - cidr.prefix);
    return { family: cidr.family, lo: cidr.start, hi: cidr.start + size - 1n };
  }
  const ip = parseIp(peer);
  return ip === null ? null : { family: ip.family, lo: ip.value, hi: ip.value };
}

/** Sorted, merged (touching intervals join), so the same space always gives the same elements. */
export function unionIntervals<T extends bigint | number>(list: readonly Interval<T>[]): Interval<T>[] {
  const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval<T>[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    // lo <= last.hi + 1, written without mixing bigint and number arithmetic.
    if (last !== undefined && (iv.lo <= last.hi || iv.lo === successor(last.hi))) {
      if (iv.hi > last.hi) last.hi = iv.hi;
    } else out.push({ lo: iv.lo, hi: iv.hi });
  }
  return out;
}

function successor<T extends bigint | number>(v: T): T {
  return (typeof v === 'bigint' ? v + 1n : (v as number) + 1) as T;
}

function sameIntervals(a: readonly Interval<number>[], b: readonly Interval<number>[]): boolean {
  return a.length === b.length && a.every((x, i) => x.lo === b[i]?.lo && x.hi === b[i]?.hi);
}

/**
 * Cuts a union of rectangles (address interval x port interval) into disjoint rectangles: a sweep
 * over address boundaries, merging neighbouring address slices that allow the same ports.
 */
export function unionRects(rects: readonly Rect[]): Rect[] {
  if (rects.length === 0) return [];
  const bounds = new Set<bigint>();
  for (const r of rects) {
    bounds.add(r.lo);
    bounds.add(r.hi + 1n);
  }
  const points = [...bounds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const byStart = [...rects].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Rect[] = [];
  let active: Rect[] = [];
  let next = 0;
  let open: { lo: bigint; hi: bigint; ports: Interval<number>[] } | null = null;
  const close = (): void => {
    if (open === null) return;
    for (const p of open.ports) out.push({ lo: open.lo, hi: open.hi, ports: p });
    open = null;
  };
  for (let i = 0; i < points.length - 1; i++) {
    const lo = points[i] as bigint;
    const hi = (points[i + 1] as bigint) - 1n;
    active = active.filter((r) => r.hi >= lo);
    while (next < byStart.length && (byStart[next] as Rect).lo <= lo) active.push(byStart[next++] as Rect);
    const ports = unionIntervals(active.map((r) => r.ports));
    if (ports.length === 0) {
      close();
      continue;
    }
    const current = open as { lo: bigint; hi: bigint; ports: Interval<number>[] } | null;
    if (current !== null && current.hi + 1n === lo && sameIntervals(current.ports, ports)) current.hi = hi;
    else {
      close();
      open = { lo, hi, ports };
    }
  }
  close();
  return out;
}

/** nft's text for an address interval: an address, a CIDR when it is one, else "first-last". */
export function addressText(family: IpFamily, lo: bigint, hi: bigint): string {
  if (lo === hi) return formatIp(family, lo);
  const size = hi - lo + 1n;
  if ((size & (size - 1n)) === 0n && (lo & (size - 1n)) === 0n) {
    let bits = 0;
    while (1n << BigInt(bits) < size) bits++;
    return `${formatIp(family, lo)}/${familyBits(family) - bits}`;
  }
  return `${formatIp(family, lo)}-${formatIp(family, hi)}`;
}

function portText(iv: Interval<number>): string {
  return iv.lo === iv.hi ? String(iv.lo) : `${iv.lo}-${iv.hi}`;
}

/**
 * The hash-set element of a span with one address and one port (or every port): such keys are
 * independent of each other, so they need no flattening. Null for any other span.
 */
export function exactElement(span: AllowSpan): { family: IpFamily; key: KeyParts } | null {
  if (span.peer === 'any' || (span.port !== 'any' && span.port.from !== span.port.to)) return null;
  const iv = peerInterval(span.peer);
  if (iv === null || iv.lo !== iv.hi) return null;
  const address = formatIp(iv.family, iv.lo);
  return { family: iv.family, key: span.port === 'any' ? [address] : [address, PROTOCOL_NAMES[span.port.protocol], String(span.port.from)] };
}

export function flattenAllowSpans(spans: Iterable<AllowSpan>): FlatAllowSet {
  let allowAll = false;
  const anyPeer = new Map<Protocol, Interval<number>[]>();
  const allPorts: Record<IpFamily, Interval<bigint>[]> = { 4: [], 6: [] };
  const rects: Record<IpFamily, Map<Protocol, Rect[]>> = { 4: new Map(), 6: new Map() };
  const podRects: Record<IpFamily, Map<Protocol, Rect[]>> = { 4: new Map(), 6: new Map() };
  for (const { peer, port } of spans) {
    if (peer === 'any') {
      if (port === 'any') allowAll = true;
      else {
        const list = anyPeer.get(port.protocol) ?? [];
        list.push({ lo: port.from, hi: port.to });
        anyPeer.set(port.protocol, list);
      }
      continue;
    }
    const iv = peerInterval(peer);
    if (iv === null) continue; // the compiler only emits valid peers
    if (port === 'any') allPorts[iv.family].push({ lo: iv.lo, hi: iv.hi });
    else {
      const byProto = (iv.lo === iv.hi ? podRects : rects)[iv.family];
      const list = byProto.get(port.protocol) ?? [];
      list.push({ lo: iv.lo, hi: iv.hi, ports: { lo: port.from, hi: port.to } });
      byProto.set(port.protocol, list);
    }
  }
  const protocols = (m: Map<Protocol, unknown>): Protocol[] => [...m.keys()].sort();
  const anyPeerPorts: KeyParts[] = [];
  for (const proto of protocols(anyPeer)) {
    for (const iv of unionIntervals(anyPeer.get(proto) ?? [])) anyPeerPorts.push([PROTOCOL_NAMES[proto], portText(iv)]);
  }
  const peersAllPorts: Record<IpFamily, KeyParts[]> = { 4: [], 6: [] };
  const peerPorts: Record<IpFamily, KeyParts[]> = { 4: [], 6: [] };
  const podPortRanges: Record<IpFamily, KeyParts[]> = { 4: [], 6: [] };
  const flatRects = (family: IpFamily, byProto: Map<Protocol, Rect[]>, out: KeyParts[]): void => {
    for (const proto of protocols(byProto)) {
      for (const r of unionRects(byProto.get(proto) ?? [])) out.push([addressText(family, r.lo, r.hi), PROTOCOL_NAMES[proto], portText(r.ports)]);
    }
  };
  for (const family of [4, 6] as const) {
    for (const iv of unionIntervals(allPorts[family])) peersAllPorts[family].push([addressText(family, iv.lo, iv.hi)]);
    flatRects(family, rects[family], peerPorts[family]);
    flatRects(family, podRects[family], podPortRanges[family]);
  }
  return { allowAll, anyPeerPorts, peersAllPorts, peerPorts, podPortRanges };
}
