// Pods by address range, so that an ipBlock peer finds the pods inside it without a scan of the
// cluster. Addresses go into buckets of their first 16 bits (a /16 for IPv4, a /16 for IPv6); the key
// is read from the canonical text, without parsing the whole address.
import type { Cidr } from '../net/ip';
import { cidrContainsCidr } from '../net/ip';

const BUCKET_PREFIX = 16;

interface Bucket {
  readonly cidr: Cidr;
  /** pod key -> how many of its addresses are in the bucket. */
  readonly pods: Map<string, number>;
}

/** The bucket of a canonical address, as "4:<first 16 bits>" or "6:<first 16 bits>". */
export function addressBucket(ip: string): { key: string; cidr: Cidr } | null {
  if (ip.includes(':')) {
    const head = ip.startsWith('::') ? 0 : parseInt(ip.slice(0, ip.indexOf(':')), 16);
    if (!Number.isInteger(head)) return null;
    return { key: `6:${head}`, cidr: { family: 6, start: BigInt(head) << 112n, prefix: BUCKET_PREFIX } };
  }
  const first = ip.indexOf('.');
  const second = ip.indexOf('.', first + 1);
  if (first < 0 || second < 0) return null;
  const head = Number(ip.slice(0, first)) * 256 + Number(ip.slice(first + 1, second));
  return { key: `4:${head}`, cidr: { family: 4, start: BigInt(head) << 16n, prefix: BUCKET_PREFIX } };
}

/** The bucket a CIDR lies in entirely, or null when it spans several (prefix shorter than the buckets'). */
export function cidrBucket(cidr: Cidr): string | null {
  if (cidr.prefix < BUCKET_PREFIX) return null;
  const bits = cidr.family === 4 ? 32n : 128n;
  return `${cidr.family}:${Number(cidr.start >> (bits - BigInt(BUCKET_PREFIX)))}`;
}

export class PodAddressIndex {
  private readonly buckets = new Map<string, Bucket>();

  add(pod: string, ips: readonly string[]): void {
    for (const ip of ips) {
      const b = addressBucket(ip);
      if (b === null) continue;
      let bucket = this.buckets.get(b.key);
      if (bucket === undefined) this.buckets.set(b.key, (bucket = { cidr: b.cidr, pods: new Map() }));
      bucket.pods.set(pod, (bucket.pods.get(pod) ?? 0) + 1);
    }
  }

  remove(pod: string, ips: readonly string[]): void {
    for (const ip of ips) {
      const b = addressBucket(ip);
      const bucket = b === null ? undefined : this.buckets.get(b.key);
      if (b === null || bucket === undefined) continue;
      const n = (bucket.pods.get(pod) ?? 0) - 1;
      if (n > 0) bucket.pods.set(pod, n);
      else bucket.pods.delete(pod);
      if (bucket.pods.size === 0) this.buckets.delete(b.key);
    }
  }

  /** Every pod with an address in a bucket the CIDR overlaps (a superset of the pods inside it). */
  *podsInCidr(cidr: Cidr): IterableIterator<string> {
    for (const bucket of this.buckets.values()) {
      if (cidrContainsCidr(bucket.cidr, cidr) || cidrContainsCidr(cidr, bucket.cidr)) yield* bucket.pods.keys();
    }
  }
}
