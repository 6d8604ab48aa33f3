// The grouped, readable form of a node's rule table, built from its elements (for /rules and probe).
import type { DirectionRules, LocalPodRules, PeerMatch, PortMatch, RuleTable, RuleTableElement } from '../api';
import { portMatchText } from './elements';

interface PodBuilder {
  ips: string[];
  isolatedBy: { ingress: string[]; egress: string[] };
  rules: { ingress: Map<string, Map<string, { port: PortMatch; peers: PeerMatch[] }>>; egress: Map<string, Map<string, { port: PortMatch; peers: PeerMatch[] }>> };
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function buildRuleTable(node: string, elements: Iterable<RuleTableElement>): RuleTable {
  const pods = new Map<string, PodBuilder>();
  const podOf = (key: string): PodBuilder => {
    let p = pods.get(key);
    if (p === undefined) {
      p = { ips: [], isolatedBy: { ingress: [], egress: [] }, rules: { ingress: new Map(), egress: new Map() } };
      pods.set(key, p);
    }
    return p;
  };
  for (const e of elements) {
    const pod = podOf(e.pod);
    if (e.kind === 'address') pod.ips.push(e.ip);
    else if (e.kind === 'isolation') pod.isolatedBy[e.direction].push(e.policy);
    else {
      let rule = pod.rules[e.direction].get(e.rule);
      if (rule === undefined) pod.rules[e.direction].set(e.rule, (rule = new Map()));
      const portKey = portMatchText(e.port);
      let group = rule.get(portKey);
      if (group === undefined) rule.set(portKey, (group = { port: e.port, peers: [] }));
      group.peers.push(e.peer);
    }
  }
  const direction = (p: PodBuilder, d: 'ingress' | 'egress'): DirectionRules => ({
    isolatedBy: p.isolatedBy[d].sort(byText),
    rules: [...p.rules[d]].sort((a, b) => byText(a[0], b[0])).map(([rule, ports]) => ({
      rule,
      byPort: [...ports].sort((a, b) => byText(a[0], b[0])).map(([, g]) => ({ port: g.port, peers: g.peers.sort(byText) })),
    })),
  });
  const out: LocalPodRules[] = [...pods]
    .sort((a, b) => byText(a[0], b[0]))
    .map(([pod, p]) => ({ pod, ips: p.ips.sort(byText), ingress: direction(p, 'ingress'), egress: direction(p, 'egress') }));
  return { node, pods: out };
}
