// The grouped, readable form of a node's rule table, built from its elements (for /rules and probe).
import type { Direction, LocalPodRules, PeerMatch, PortMatch, RulePeers, RuleTable, RuleTableElement } from '../api';
import { portMatchText } from './elements';

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface PodBuilder {
  ips: string[];
  isolatedBy: Record<Direction, string[]>;
  binds: Record<Direction, Map<string, PortMatch[]>>;
}

interface RuleBuilder {
  direction: Direction;
  peers: PeerMatch[];
  byPort: Map<string, { port: PortMatch; peers: PeerMatch[] }>;
}

export function buildRuleTable(node: string, elements: Iterable<RuleTableElement>): RuleTable {
  const pods = new Map<string, PodBuilder>();
  const rules = new Map<string, RuleBuilder>();
  const podOf = (key: string): PodBuilder => {
    let p = pods.get(key);
    if (p === undefined) pods.set(key, (p = { ips: [], isolatedBy: { ingress: [], egress: [] }, binds: { ingress: new Map(), egress: new Map() } }));
    return p;
  };
  for (const e of elements) {
    switch (e.kind) {
      case 'address':
        podOf(e.pod).ips.push(e.ip);
        break;
      case 'isolation':
        podOf(e.pod).isolatedBy[e.direction].push(e.policy);
        break;
      case 'bind': {
        const binds = podOf(e.pod).binds[e.direction];
        let ports = binds.get(e.rule);
        if (ports === undefined) binds.set(e.rule, (ports = []));
        if (e.port !== null) ports.push(e.port);
        break;
      }
      case 'peer': {
        let rule = rules.get(e.rule);
        if (rule === undefined) rules.set(e.rule, (rule = { direction: e.direction, peers: [], byPort: new Map() }));
        if (e.port === null) rule.peers.push(e.peer);
        else {
          const key = portMatchText(e.port);
          let group = rule.byPort.get(key);
          if (group === undefined) rule.byPort.set(key, (group = { port: e.port, peers: [] }));
          group.peers.push(e.peer);
        }
        break;
      }
    }
  }
  const sortPorts = (ports: PortMatch[]): PortMatch[] => ports.sort((a, b) => byText(portMatchText(a), portMatchText(b)));
  const podRules = (p: PodBuilder, d: Direction): LocalPodRules['ingress'] => ({
    isolatedBy: p.isolatedBy[d].sort(byText),
    rules: [...p.binds[d]].sort((a, b) => byText(a[0], b[0])).map(([rule, ports]) => ({ rule, ports: sortPorts(ports) })),
  });
  return {
    node,
    pods: [...pods].sort((a, b) => byText(a[0], b[0])).map(([pod, p]) => ({ pod, ips: p.ips.sort(byText), ingress: podRules(p, 'ingress'), egress: podRules(p, 'egress') })),
    rules: [...rules].sort((a, b) => byText(a[0], b[0])).map(([rule, r]): RulePeers => ({
      rule,
      direction: r.direction,
      peers: r.peers.sort(byText),
      peersByPort: [...r.byPort].sort((a, b) => byText(a[0], b[0])).map(([, g]) => ({ port: g.port, peers: g.peers.sort(byText) })),
    })),
  };
}
