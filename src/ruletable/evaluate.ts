// Decides one connection on a node's rule table: the same question the kernel answers per packet,
// asked of the compiled elements. probe uses it; later, explain will too.
import type { Direction, PeerMatch, PortMatch, Protocol, RuleTableElement } from '../api';
import type { IpAddress } from '../net/ip';
import { peerContainsIp } from '../net/ip';

export interface Verdict {
  readonly allowed: boolean;
  /** The rule that allows it, when one does. */
  readonly rule?: string;
  /** The policies that isolate the pod in this direction; empty when it is not isolated. */
  readonly isolatedBy: readonly string[];
}

interface Binding {
  isolatedBy: string[];
  /** rule -> ports bound for this pod */
  rules: Map<string, PortMatch[]>;
}

/** An index over one node's elements: bindings by (local pod, direction), peers by rule. */
export class RuleTableIndex {
  private readonly bindings = new Map<string, Binding>();
  private readonly peers = new Map<string, { peer: PeerMatch; port: PortMatch | null }[]>();

  constructor(elements: Iterable<RuleTableElement>) {
    const binding = (pod: string, direction: Direction): Binding => {
      const key = `${pod}|${direction}`;
      let b = this.bindings.get(key);
      if (b === undefined) this.bindings.set(key, (b = { isolatedBy: [], rules: new Map() }));
      return b;
    };
    for (const e of elements) {
      if (e.kind === 'isolation') binding(e.pod, e.direction).isolatedBy.push(e.policy);
      else if (e.kind === 'bind') {
        const rules = binding(e.pod, e.direction).rules;
        let ports = rules.get(e.rule);
        if (ports === undefined) rules.set(e.rule, (ports = []));
        if (e.port !== null) ports.push(e.port);
      } else if (e.kind === 'peer') {
        let list = this.peers.get(e.rule);
        if (list === undefined) this.peers.set(e.rule, (list = []));
        list.push({ peer: e.peer, port: e.port });
      }
    }
    for (const b of this.bindings.values()) b.isolatedBy.sort();
  }

  decide(pod: string, direction: Direction, remote: IpAddress, protocol: Protocol, port: number): Verdict {
    const b = this.bindings.get(`${pod}|${direction}`);
    if (b === undefined || b.isolatedBy.length === 0) return { allowed: true, isolatedBy: [] };
    for (const rule of [...b.rules.keys()].sort()) {
      const boundPortMatches = (b.rules.get(rule) ?? []).some((m) => portMatches(m, protocol, port));
      for (const p of this.peers.get(rule) ?? []) {
        const portOk = p.port === null ? boundPortMatches : portMatches(p.port, protocol, port);
        if (portOk && (p.peer === 'any' || peerContainsIp(p.peer, remote))) return { allowed: true, rule, isolatedBy: b.isolatedBy };
      }
    }
    return { allowed: false, isolatedBy: b.isolatedBy };
  }
}

export function portMatches(match: PortMatch, protocol: Protocol, port: number): boolean {
  return match === 'any' || (match.protocol === protocol && port >= match.from && port <= match.to);
}
