// Addresses the sandbox itself uses, and the checks that keep pod addresses clear of them.
import { canonicalIp, cidrContainsIp, formatCidr, parseCidr, parseIp, type Cidr } from '../net/ip';
import type { IpFamily } from '../api';
import { SandboxError } from './errors';

export const FABRIC_V4_CIDR = '169.254.100.0/24';
export const FABRIC_V6_CIDR = 'fd00:fab::/64';
/** The routed topology's pod gateway: answered by the node, which has it on lo. */
export const GATEWAY_V4 = '169.254.1.1';
/** The pods' IPv6 gateway (routed) and the address of the node's side of every pod link. */
export const GATEWAY_V6 = 'fe80::1';
export const MAX_NODES = 250;

export function fabricV4(index: number): string {
  return `169.254.100.${index + 1}`;
}
export function fabricV6(index: number): string {
  return `fd00:fab::${(index + 1).toString(16)}`;
}

/** Pod addresses must not fall in these: they would shadow the fabric, a gateway or something local. */
const RESERVED: readonly { cidr: Cidr; why: string }[] = [
  { text: FABRIC_V4_CIDR, why: "the sandbox's node fabric" },
  { text: FABRIC_V6_CIDR, why: "the sandbox's node fabric" },
  { text: `${GATEWAY_V4}/32`, why: "the sandbox's pod gateway" },
  { text: 'fe80::/10', why: 'IPv6 link-local space' },
  { text: '127.0.0.0/8', why: 'loopback' },
  { text: '::1/128', why: 'loopback' },
  { text: '0.0.0.0/8', why: "'this network'" },
  { text: '::/128', why: 'the unspecified address' },
  { text: '224.0.0.0/3', why: 'multicast or reserved space' },
  { text: 'ff00::/8', why: 'multicast' },
].map(({ text, why }) => ({ cidr: parseCidr(text) as Cidr, why }));

export interface PodAddress {
  ip: string;
  family: IpFamily;
}

/** Validates and canonicalises one pod's addresses; errors name the pod and the address. */
export function podAddresses(pod: string, ips: readonly string[]): PodAddress[] {
  if (ips.length === 0) {
    throw new SandboxError(`pod ${pod} has no IP addresses: give it status.podIPs (IPv4 and/or IPv6) before adding it to the sandbox`);
  }
  const out: PodAddress[] = [];
  for (const text of ips) {
    const parsed = parseIp(text);
    const ip = canonicalIp(text);
    if (parsed === null || ip === null) {
      throw new SandboxError(`pod ${pod}: ${JSON.stringify(text)} is not an IPv4 or IPv6 address; fix the pod's status.podIPs`);
    }
    const hit = RESERVED.find((r) => cidrContainsIp(r.cidr, parsed));
    if (hit !== undefined) {
      throw new SandboxError(
        `pod ${pod}: address ${ip} lies in ${formatCidr(hit.cidr)} (${hit.why}), which the sandbox cannot give to a pod; ` +
          `give the pod an address outside ${FABRIC_V4_CIDR}, ${FABRIC_V6_CIDR}, ${GATEWAY_V4}, link-local, loopback and multicast space`,
      );
    }
    if (out.some((a) => a.ip === ip)) {
      throw new SandboxError(`pod ${pod} lists address ${ip} twice in its IPs; list each address once`);
    }
    out.push({ ip, family: parsed.family });
  }
  return out;
}

export function hostPrefix(a: PodAddress): string {
  return `${a.ip}/${a.family === 4 ? 32 : 128}`;
}
