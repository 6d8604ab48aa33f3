// A node's rule table indexed the way its consumers ask: bound rules per (local pod, direction) and
// peers per rule. The dataplane keeps one up to date from deltas (applying one reports what it
// touched); probe builds one from a compiled table and asks it about single connections.
import type { Direction, PeerMatch, PortMatch, Protocol, RuleTableDelta, RuleTableElement } from '../api';
import { DIRECTIONS } from '../api';
import type { IpAddress } from '../net/ip';
import { peerContainsIp } from '../net/ip';
import { portMatchText } from './elements';

/** One allowed (peer, port) pair as the rule table states it. */
export interface AllowSpan {
  readonly peer: PeerMatch;
  readonly port: PortMatch;
}

export interface Verdict {
  readonly allowed: boolean;
  /** The rule that allows it, when one does. */
  readonly rule?: string;
  /** The policies that isolate the pod in this direction; empty when it is not isolated. */
  readonly isolatedBy: readonly string[];
}

export function portMatches(match: PortMatch, protocol: Protocol, port: number): boolean {
  return match === 'any' || (match.protocol === protocol && port >= match.from && port <= match.to);
}

export interface Touched {
  /** "pod|direction" keys whose binding, isolation or addresses changed. */
  readonly podDirections: Set<string>;
  readonly rules: Set<string>;
}

function counted<K>(map: Map<K, number>, key: K, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

export function podDirectionKey(pod: string, direction: Direction): string {
  return `${pod}|${direction}`;
}

export class RuleState {
  static of(elements: Iterable<RuleTableElement>): RuleState {
    const state = new RuleState();
    state.apply({ added: [...elements], removed: [] });
    return state;
  }

  private readonly addresses = new Map<string, Map<string, number>>();
  private readonly isolation = new Map<string, Map<string, number>>();
  /** pod|direction -> rule -> bound port text -> port (null: the binding itself) */
  private readonly binds = new Map<string, Map<string, Map<string, PortMatch | null>>>();
  private readonly peers = new Map<string, Map<string, { peer: PeerMatch; port: PortMatch | null }>>();

  apply(delta: RuleTableDelta): Touched {
    const touched: Touched = { podDirections: new Set(), rules: new Set() };
    for (const e of delta.removed) this.change(e, -1, touched);
    for (const e of delta.added) this.change(e, +1, touched);
    return touched;
  }

  private change(e: RuleTableElement, by: 1 | -1, touched: Touched): void {
    switch (e.kind) {
      case 'address': {
        let ips = this.addresses.get(e.pod);
        if (ips === undefined) this.addresses.set(e.pod, (ips = new Map()));
        counted(ips, e.ip, by);
        if (ips.size === 0) this.addresses.delete(e.pod);
        for (const d of DIRECTIONS) touched.podDirections.add(podDirectionKey(e.pod, d));
        break;
      }
      case 'isolation': {
        const key = podDirectionKey(e.pod, e.direction);
        let policies = this.isolation.get(key);
        if (policies === undefined) this.isolation.set(key, (policies = new Map()));
        counted(policies, e.policy, by);
        if (policies.size === 0) this.isolation.delete(key);
        touched.podDirections.add(key);
        break;
      }
      case 'bind': {
        const key = podDirectionKey(e.pod, e.direction);
        let rules = this.binds.get(key);
        if (rules === undefined) this.binds.set(key, (rules = new Map()));
        let ports = rules.get(e.rule);
        if (ports === undefined) rules.set(e.rule, (ports = new Map()));
        const portKey = e.port === null ? '' : portMatchText(e.port);
        if (by > 0) ports.set(portKey, e.port);
        else ports.delete(portKey);
        if (ports.size === 0) rules.delete(e.rule);
        if (rules.size === 0) this.binds.delete(key);
        touched.podDirections.add(key);
        break;
      }
      case 'peer': {
        let peers = this.peers.get(e.rule);
        if (peers === undefined) this.peers.set(e.rule, (peers = new Map()));
        const peerKey = `${e.peer}|${e.port === null ? '' : portMatchText(e.port)}`;
        if (by > 0) peers.set(peerKey, { peer: e.peer, port: e.port });
        else peers.delete(peerKey);
        if (peers.size === 0) this.peers.delete(e.rule);
        touched.rules.add(e.rule);
        break;
      }
    }
  }

  ipsOf(pod: string): string[] {
    return [...(this.addresses.get(pod)?.keys() ?? [])];
  }

  pods(): Set<string> {
    return new Set(this.addresses.keys());
  }

  isIsolated(pod: string, direction: Direction): boolean {
    return this.isolation.has(podDirectionKey(pod, direction));
  }

  /**
   * Decides one new connection the way the kernel does per packet: allowed when the pod is not
   * isolated in that direction, or when a rule bound to it has a peer containing `remote` on a
   * matching port. Rules are tried in name order, so the reason is stable.
   */
  decide(pod: string, direction: Direction, remote: IpAddress, protocol: Protocol, port: number): Verdict {
    const key = podDirectionKey(pod, direction);
    const isolatedBy = [...(this.isolation.get(key)?.keys() ?? [])].sort();
    if (isolatedBy.length === 0) return { allowed: true, isolatedBy };
    const rules = this.binds.get(key);
    for (const rule of [...(rules?.keys() ?? [])].sort()) {
      const bound = [...(rules?.get(rule)?.values() ?? [])];
      const boundPortMatches = bound.some((m) => m !== null && portMatches(m, protocol, port));
      for (const p of this.peers.get(rule)?.values() ?? []) {
        const portOk = p.port === null ? boundPortMatches : portMatches(p.port, protocol, port);
        if (portOk && (p.peer === 'any' || peerContainsIp(p.peer, remote))) return { allowed: true, rule, isolatedBy };
      }
    }
    return { allowed: false, isolatedBy };
  }

  /**
   * The identity of what is allowed to the pod in one direction: its bound rules with their bound
   * ports. Pods with the same signature share one chain and one set of sets.
   */
  signature(pod: string, direction: Direction): { text: string; rules: string[] } {
    const rules = this.binds.get(podDirectionKey(pod, direction));
    const names = [...(rules?.keys() ?? [])].sort();
    const text = names.map((r) => `${r}:${[...(rules?.get(r)?.keys() ?? [])].sort().join(',')}`).join(';');
    return { text: `${direction}|${text}`, rules: names };
  }

  /** The ports a rule is bound with to the pod (what its peers without ports of their own allow). */
  boundPorts(pod: string, direction: Direction, rule: string): PortMatch[] {
    const ports = this.binds.get(podDirectionKey(pod, direction))?.get(rule);
    return [...(ports?.values() ?? [])].filter((p): p is PortMatch => p !== null);
  }

  /** The pod's own elements (addresses, isolation, bindings) and the peers of the rules bound to it. */
  *podElements(pod: string): IterableIterator<RuleTableElement> {
    for (const ip of this.addresses.get(pod)?.keys() ?? []) yield { kind: 'address', pod, ip };
    for (const direction of DIRECTIONS) {
      const key = podDirectionKey(pod, direction);
      for (const policy of this.isolation.get(key)?.keys() ?? []) yield { kind: 'isolation', pod, direction, policy };
      for (const [rule, ports] of this.binds.get(key) ?? []) {
        for (const port of ports.values()) yield { kind: 'bind', pod, direction, rule, port };
        for (const p of this.peers.get(rule)?.values() ?? []) yield { kind: 'peer', rule, direction, peer: p.peer, port: p.port };
      }
    }
  }

  /** Everything a group with this pod's signature allows, as (peer, port) spans. */
  *spans(pod: string, direction: Direction): IterableIterator<AllowSpan> {
    const rules = this.binds.get(podDirectionKey(pod, direction));
    for (const [rule, ports] of rules ?? []) {
      const bound = [...ports.values()].filter((p): p is PortMatch => p !== null);
      for (const p of this.peers.get(rule)?.values() ?? []) {
        if (p.port !== null) yield { peer: p.peer, port: p.port };
        else for (const port of bound) yield { peer: p.peer, port };
      }
    }
  }
}
