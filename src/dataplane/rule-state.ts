// The dataplane's copy of the node's rule table, indexed the way programming needs it: bound rules
// per (local pod, direction) and peers per rule. Applying a delta reports what it touched.
import type { Direction, PeerMatch, PortMatch, RuleTableDelta, RuleTableElement } from '../api';
import { DIRECTIONS } from '../api';
import { portMatchText } from '../ruletable';
import type { AllowSpan } from './flatten';

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
   * The identity of what is allowed to the pod in one direction: its bound rules with their bound
   * ports. Pods with the same signature share one chain and one set of sets.
   */
  signature(pod: string, direction: Direction): { text: string; rules: string[] } {
    const rules = this.binds.get(podDirectionKey(pod, direction));
    const names = [...(rules?.keys() ?? [])].sort();
    const text = names.map((r) => `${r}:${[...(rules?.get(r)?.keys() ?? [])].sort().join(',')}`).join(';');
    return { text: `${direction}|${text}`, rules: names };
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
