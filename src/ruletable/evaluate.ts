// Decides one connection on a node's rule table: the same question the kernel answers per packet,
// asked of the compiled elements. probe uses it; later, explain will too.
import type { Direction, PortMatch, Protocol, RuleTableElement } from '../api';
import type { IpAddress } from '../net/ip';
import { peerContainsIp } from '../net/ip';


export interface Verdict {
  readonly allowed: boolean;
  /** The rule that allows it, when one does. */
  readonly rule?: string;
  /** The policies that isolate the pod in this direction; empty when it is not isolated. */
  readonly isolatedBy: readonly string[];
}

interface PodDirection {
  isolatedBy: string[];
  allows: { rule: string; peer: string; port: PortMatch }[];
}

/** An index over one node's elements by (local pod, direction). */
export class RuleTableIndex {
  private readonly entries = new Map<string, PodDirection>();

  constructor(elements: Iterable<RuleTableElement>) {
    for (const e of elements) {
      if (e.kind === 'address') continue;
      const key = `${e.pod}|${e.direction}`;
      let entry = this.entries.get(key);
      if (entry === undefined) this.entries.set(key, (entry = { isolatedBy: [], allows: [] }));
      if (e.kind === 'isolation') entry.isolatedBy.push(e.policy);
      else entry.allows.push({ rule: e.rule, peer: e.peer, port: e.port });
    }
    for (const entry of this.entries.values()) {
      entry.isolatedBy.sort();
      entry.allows.sort((a, b) => (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0));
    }
  }

  decide(pod: string, direction: Direction, remote: IpAddress, protocol: Protocol, port: number): Verdict {
    const entry = this.entries.get(`${pod}|${direction}`);
    if (entry === undefined || entry.isolatedBy.length === 0) return { allowed: true, isolatedBy: [] };
    for (const allow of entry.allows) {
      if (!portMatches(allow.port, protocol, port)) continue;
      if (allow.peer === 'any' || peerContainsIp(allow.peer, remote)) return { allowed: true, rule: allow.rule, isolatedBy: entry.isolatedBy };
    }
    return { allowed: false, isolatedBy: entry.isolatedBy };
  }
}

export function portMatches(match: PortMatch, protocol: Protocol, port: number): boolean {
  return match === 'any' || (match.protocol === protocol && port >= match.from && port <= match.to);
}


