// Cases beyond the upstream suite, in its format: multi-step updates through the incremental path,
// and port ranges. They run wherever the upstream cases run.
import type { BaseCluster, KubeObject } from './cluster';
import { loopbackPairs, Reachability } from './reachability';
import type { ConformanceCase, ProbeSpec } from './upstream-cases';

const CONTEXT = 'netpol-agent > beyond upstream';

function expectations(cluster: BaseCluster, port: number, build: (r: Reachability) => Reachability): ProbeSpec {
  return { port, protocol: 'TCP', expected: build(new Reachability(cluster.podKeys, true)).table(), ignored: loopbackPairs(cluster.podKeys) };
}

function policy(namespace: string, name: string, spec: object): KubeObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec } as KubeObject;
}

export const extraCases: ConformanceCase[] = [
  {
    name: 'a policy added, then updated, then a namespace relabelled, then the label removed',
    context: CONTEXT,
    ipFamilies: [4, 6],
    build: (c) => {
      const blueOnly = { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }], ports: [{ port: 80 }] }] };
      const blueOrB = { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }, { podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }] };
      return [
        { description: 'x/a admits namespaces labelled team=blue on 80: none is', apply: [policy('x', 'blue', blueOnly)], probes: [expectations(c, 80, (r) => r.expectAllIngress('x/a', false))] },
        { description: 'the policy also admits x/b', apply: [policy('x', 'blue', blueOrB)], probes: [expectations(c, 80, (r) => r.expectAllIngress('x/a', false).expect('x/b', 'x/a', true))] },
        {
          description: 'namespace y gets team=blue',
          apply: [c.namespaceWithLabels('y', { team: 'blue' })],
          probes: [expectations(c, 80, (r) => r.expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expectPeer({ namespace: 'y' }, { namespace: 'x', pod: 'a' }, true))],
        },
        { description: 'namespace y loses the label again', apply: [c.namespace('y')], probes: [expectations(c, 80, (r) => r.expectAllIngress('x/a', false).expect('x/b', 'x/a', true))] },
      ];
    },
  },
  {
    name: 'egress on a port range (endPort) towards another namespace, and nothing beyond it',
    context: CONTEXT,
    ipFamilies: [4, 6],
    build: (c) => [{
      description: 'x/a may reach namespace y on TCP 80-81 only',
      apply: [policy('x', 'range', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })],
      probes: [80, 81].map((port) => expectations(c, port, (r) => r.expectAllEgress('x/a', false).expectPeer({ namespace: 'x', pod: 'a' }, { namespace: 'y' }, true))),
    }],
  },
];

/**
 * The IPv6 subset the real-packet tiers run: one case of each kind of selector, port and update
 * (the ipBlock cases are IPv4-only, as upstream's are).
 */
export const IPV6_SUBSET: readonly string[] = [
  "should support a 'default-deny-all' policy",
  'should enforce policy based on PodSelector and NamespaceSelector',
  'should enforce policy based on Ports',
  'should allow ingress access on one named port',
  'should allow egress access on one named port',
  'should allow ingress access from updated namespace',
  'should deny egress from pods based on PodSelector',
  'should work with Ingress, Egress specified together',
  'a policy added, then updated, then a namespace relabelled, then the label removed',
];
