// The upstream Kubernetes NetworkPolicy e2e suite as data.
//
// Source: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go at
// commit 9db638c0807a720aa050ebcef69c32e4d4cce280 (the last layout in which
// every test probes the full 3x3 pod model, which is the base cluster here),
// cross-checked against the later 008b3652959ca58af8be3fb5b6ecfe9ae7638282
// (same tests and policies, each run on a subset of those pods). Every
// `f.It(...)` traffic test of the three contexts (TCP, UDP, SCTP) is one
// ConformanceCase, in upstream order; each upstream ValidateOrFail call is one
// ProbeSpec, and each policy/label change between them starts a new Step.
// The truth tables are built with the same Expect* calls, in the same order,
// as upstream (see reachability.ts). See README.md.

import type { IpFamily, Protocol } from '../../src/api';
import {
  type BaseCluster,
  type KubeObject,
  type LabelMap,
  type LabelSelectorObject,
  type NetworkPolicyEgressRuleObject,
  type NetworkPolicyIngressRuleObject,
  type NetworkPolicyObject,
  type NetworkPolicyPeerObject,
  type PolicyType,
  type SelectorOperator,
  METADATA_NAME_LABEL_KEY,
} from './cluster';
import { type PairKey, Reachability, loopbackPairs } from './reachability';
import { formatCidr, parseCidr } from '../../src/net/ip';

export interface ProbeSpec {
  port: number;
  protocol: Protocol;
  /** "from->to" (pod keys like "x/a") -> upstream expects the connection to succeed; all 81 ordered pairs. */
  expected: Map<string, boolean>;
  /**
   * Pairs whose observed result upstream never fails on: the 9 loopback pairs
   * (x/a->x/a ...), because upstream compares with ignoreLoopback = true. Their
   * `expected` value is still upstream's, for display.
   */
  ignored: ReadonlySet<PairKey>;
}

export interface Step {
  description: string;
  /** Objects to create or replace by kind + namespace/name, applied cumulatively on the cluster. */
  apply?: KubeObject[];
  delete?: { kind: 'NetworkPolicy' | 'Pod' | 'Namespace'; namespace?: string; name: string }[];
  /** What upstream probes at this point (port/protocol and its truth table), in upstream order. */
  probes: ProbeSpec[];
}

export interface ConformanceCase {
  /** The upstream It() text, verbatim (not unique across contexts: use context + name). */
  name: string;
  /** The upstream Describe/Context path. */
  context: string;
  /**
   * Address families over which the truth tables hold, i.e. over which a runner
   * may probe pod IPs. [4, 6] for every case except the three ipBlock cases,
   * which (like upstream, which uses status.podIP) build their CIDRs from the
   * primary (IPv4) pod IP and so only hold over IPv4.
   */
  ipFamilies: IpFamily[];
  build(cluster: BaseCluster): Step[];
}

export interface SkippedUpstreamCase {
  name: string;
  context: string;
  reason: string;
}

export const UPSTREAM_SOURCE = {
  repository: 'kubernetes/kubernetes',
  path: 'test/e2e/network/netpol/network_policy.go',
  commit: '9db638c0807a720aa050ebcef69c32e4d4cce280',
  crossCheckedCommit: '008b3652959ca58af8be3fb5b6ecfe9ae7638282',
} as const;

export const CONTEXT_TCP = '[sig-network] Netpol > NetworkPolicy between server and client';
export const CONTEXT_UDP = '[sig-network] Netpol [LinuxOnly] > NetworkPolicy between server and client using UDP';
export const CONTEXT_SCTP =
  '[sig-network] Netpol [Feature:SCTPConnectivity] [LinuxOnly] > NetworkPolicy between server and client using SCTP';
const CONTEXT_API = '[sig-network] Netpol API';

export function caseFullName(c: { context: string; name: string }): string {
  return `${c.context} > ${c.name}`;
}

// ---------------------------------------------------------------------------
// Builders, mirroring upstream policies.go (GenNetworkPolicy*, SetSpec*Rules).
// ---------------------------------------------------------------------------

const NS_X = 'x';
const NS_Y = 'y';
const NS_Z = 'z';

/** A LabelSelector with only matchLabels; an empty map is the empty (match-all) selector. */
function matchLabels(labels: LabelMap): LabelSelectorObject {
  return Object.keys(labels).length === 0 ? {} : { matchLabels: { ...labels } };
}

function matchExpression(key: string, operator: SelectorOperator, values: string[]): LabelSelectorObject {
  return { matchExpressions: [{ key, operator, values: [...values] }] };
}

/**
 * GenNetworkPolicyWithNameAndPodSelector + SetSpecIngressRules/SetSpecEgressRules:
 * passing `ingress` (even empty) adds policy type Ingress, `egress` adds Egress,
 * in that order unless `policyTypes` overrides it. Empty rule lists are omitted
 * from the object, as the API server serializes them.
 */
function policy(
  namespace: string,
  name: string,
  podSelector: LabelSelectorObject,
  parts: {
    ingress?: NetworkPolicyIngressRuleObject[];
    egress?: NetworkPolicyEgressRuleObject[];
    policyTypes?: PolicyType[];
  },
): NetworkPolicyObject {
  const types: PolicyType[] = [];
  if (parts.ingress !== undefined) types.push('Ingress');
  if (parts.egress !== undefined) types.push('Egress');
  const spec: NetworkPolicyObject['spec'] = { podSelector, policyTypes: parts.policyTypes ?? types };
  if (parts.ingress !== undefined && parts.ingress.length > 0) spec.ingress = parts.ingress;
  if (parts.egress !== undefined && parts.egress.length > 0) spec.egress = parts.egress;
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

function from(...peers: NetworkPolicyPeerObject[]): NetworkPolicyIngressRuleObject {
  return { from: peers };
}

function to(...peers: NetworkPolicyPeerObject[]): NetworkPolicyEgressRuleObject {
  return { to: peers };
}

function nsName(name: string): LabelSelectorObject {
  return { matchLabels: { [METADATA_NAME_LABEL_KEY]: name } };
}

function podLabel(name: string): LabelSelectorObject {
  return { matchLabels: { pod: name } };
}

function reach(cluster: BaseCluster): Reachability {
  return new Reachability(cluster.podKeys, true);
}

function probe(cluster: BaseCluster, port: number, protocol: Protocol, r: Reachability): ProbeSpec {
  return { port, protocol, expected: r.table(), ignored: loopbackPairs(cluster.podKeys) };
}

function hostCidr(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

/** Upstream makeLargeCIDRForIP: the /4 network containing the IP. */
function largeCidrForIp(ip: string): string {
  const cidr = parseCidr(`${ip}/4`);
  if (cidr === null) throw new Error(`bad IP address ${ip}`);
  return formatCidr(cidr);
}

// ---------------------------------------------------------------------------
// The cases, in upstream order.
// ---------------------------------------------------------------------------

const BOTH: IpFamily[] = [4, 6];

function tcp(name: string, build: (c: BaseCluster) => Step[], ipFamilies: IpFamily[] = BOTH): ConformanceCase {
  return { name, context: CONTEXT_TCP, ipFamilies, build };
}

const tcpCases: ConformanceCase[] = [
  tcp("should support a 'default-deny-ingress' policy", (c) => [
    {
      description: 'deny-ingress (empty podSelector, no ingress rules) in x',
      apply: [policy(NS_X, 'deny-ingress', {}, { ingress: [] })],
      probes: [probe(c, 80, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false))],
    },
  ]),

  tcp("should support a 'default-deny-all' policy", (c) => [
    {
      description: 'deny-all (ingress and egress) in x',
      apply: [policy(NS_X, 'deny-all', {}, { ingress: [], egress: [] })],
      probes: [
        probe(c, 80, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false).expectPeer({ namespace: NS_X }, {}, false)),
      ],
    },
  ]),

  tcp('should enforce policy to allow traffic from pods within server namespace based on PodSelector', (c) => [
    {
      description: 'x/a allows ingress only from pod=b (same namespace)',
      apply: [policy(NS_X, 'x-a-allows-x-b', matchLabels({ pod: 'a' }), { ingress: [from({ podSelector: podLabel('b') })] })],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expect('x/b', 'x/a', true))],
    },
  ]),

  tcp('should enforce policy to allow ingress traffic for a target', (c) => [
    {
      description: 'deny all ingress in x, then allow all ingress to x/a from any pod in any namespace',
      apply: [
        policy(NS_X, 'deny-all', {}, { ingress: [] }),
        policy(NS_X, 'allow-all-to-a', matchLabels({ pod: 'a' }), {
          ingress: [from({ podSelector: {}, namespaceSelector: {} })],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c).expectAllIngress('x/a', true).expectAllIngress('x/b', false).expectAllIngress('x/c', false),
        ),
      ],
    },
  ]),

  tcp('should enforce policy to allow ingress traffic from pods in all namespaces', (c) => [
    {
      description: 'x/a allows ingress from every namespace (empty namespaceSelector)',
      apply: [
        policy(NS_X, 'allow-from-another-ns', matchLabels({ pod: 'a' }), { ingress: [from({ namespaceSelector: {} })] }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c))],
    },
  ]),

  tcp('should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector', (c) => [
    {
      description: 'x/a allows ingress only from namespace y (matchLabels kubernetes.io/metadata.name)',
      apply: [
        policy(NS_X, 'allow-client-a-via-ns-selector', matchLabels({ pod: 'a' }), {
          ingress: [from({ namespaceSelector: nsName(NS_Y) })],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
        ),
      ],
    },
  ]),

  tcp('should enforce policy based on PodSelector with MatchExpressions', (c) => [
    {
      description: 'x/a allows ingress only from pod In [b]',
      apply: [
        policy(NS_X, 'x-a-allows-x-b', matchLabels({ pod: 'a' }), {
          ingress: [from({ podSelector: matchExpression('pod', 'In', ['b']) })],
        }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expect('x/b', 'x/a', true))],
    },
  ]),

  tcp('should enforce policy based on NamespaceSelector with MatchExpressions', (c) => [
    {
      description: 'x/a allows ingress only from namespaces with kubernetes.io/metadata.name In [y]',
      apply: [
        policy(NS_X, 'allow-ns-y-match-selector', matchLabels({ pod: 'a' }), {
          ingress: [from({ namespaceSelector: matchExpression(METADATA_NAME_LABEL_KEY, 'In', [NS_Y]) })],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
        ),
      ],
    },
  ]),

  tcp('should enforce policy based on PodSelector or NamespaceSelector', (c) => [
    {
      description: 'x/a allows ingress from namespaces NotIn [x], or from pod=b in x (two peers)',
      apply: [
        policy(NS_X, 'allow-ns-y-match-selector', matchLabels({ pod: 'a' }), {
          ingress: [
            from(
              { namespaceSelector: matchExpression(METADATA_NAME_LABEL_KEY, 'NotIn', [NS_X]) },
              { podSelector: podLabel('b') },
            ),
          ],
        }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c).expect('x/a', 'x/a', false).expect('x/c', 'x/a', false))],
    },
  ]),

  tcp('should enforce policy based on PodSelector and NamespaceSelector', (c) => [
    {
      description: 'x/a allows ingress from pod=b in namespaces NotIn [x] (one peer, both selectors)',
      apply: [
        policy(NS_X, 'allow-ns-y-podselector-and-nsselector', matchLabels({ pod: 'a' }), {
          ingress: [
            from({
              namespaceSelector: matchExpression(METADATA_NAME_LABEL_KEY, 'NotIn', [NS_X]),
              podSelector: podLabel('b'),
            }),
          ],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c).expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true),
        ),
      ],
    },
  ]),

  tcp('should enforce policy based on Multiple PodSelectors and NamespaceSelectors', (c) => [
    {
      description: 'x/a allows ingress from pod In [b, c] in namespaces NotIn [x]',
      apply: [
        policy(NS_X, 'allow-ns-y-z-pod-b-c', matchLabels({ pod: 'a' }), {
          ingress: [
            from({
              namespaceSelector: matchExpression(METADATA_NAME_LABEL_KEY, 'NotIn', [NS_X]),
              podSelector: matchExpression('pod', 'In', ['b', 'c']),
            }),
          ],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expect('y/a', 'x/a', false)
            .expect('z/a', 'x/a', false),
        ),
      ],
    },
  ]),

  tcp('should enforce policy based on any PodSelectors', (c) => [
    {
      description: 'x/a allows ingress from pod=b or pod=c (two podSelector peers)',
      apply: [
        policy(NS_X, 'allow-ns-x-pod-b-c', matchLabels({ pod: 'a' }), {
          ingress: [from({ podSelector: podLabel('b') }, { podSelector: podLabel('c') })],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c).expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true),
        ),
      ],
    },
  ]),

  tcp(
    'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
    (c) => [
      {
        description: 'x/a allows ingress only from pod=a in namespace y',
        apply: [
          policy(NS_X, 'allow-ns-y-pod-a-via-namespace-pod-selector', matchLabels({ pod: 'a' }), {
            ingress: [from({ namespaceSelector: nsName(NS_Y), podSelector: podLabel('a') })],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expect('y/a', 'x/a', true))],
      },
    ],
  ),

  tcp('should enforce policy based on Ports', (c) => [
    {
      description:
        'Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81)',
      apply: [
        policy(NS_X, 'allow-client-a-via-ns-selector', matchLabels({ pod: 'a' }), {
          ingress: [{ from: [{ namespaceSelector: nsName(NS_Y) }], ports: [{ port: 81, protocol: 'TCP' }] }],
        }),
      ],
      probes: [
        probe(
          c,
          81,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expectPeer({ namespace: NS_Y }, { namespace: NS_X, pod: 'a' }, true)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
        ),
      ],
    },
  ]),

  tcp('should enforce multiple, stacked policies with overlapping podSelectors', (c) => {
    const allow = (): Reachability =>
      reach(c)
        .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
        .expectPeer({ namespace: NS_Y }, { namespace: NS_X, pod: 'a' }, true)
        .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false);
    return [
      {
        description:
          'Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81); verifying traffic on port 81, then on port 80',
        apply: [
          policy(NS_X, 'allow-client-a-via-ns-selector', matchLabels({ pod: 'a' }), {
            ingress: [{ from: [{ namespaceSelector: nsName(NS_Y) }], ports: [{ port: 81, protocol: 'TCP' }] }],
          }),
        ],
        probes: [probe(c, 81, 'TCP', allow()), probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false))],
      },
      {
        description: 'Verifying that we can add a policy to unblock port 80',
        apply: [
          policy(NS_X, 'allow-client-a-via-ns-selector-80', matchLabels({ pod: 'a' }), {
            ingress: [{ from: [{ namespaceSelector: nsName(NS_Y) }], ports: [{ port: 80, protocol: 'TCP' }] }],
          }),
        ],
        probes: [probe(c, 80, 'TCP', allow())],
      },
    ];
  }),

  tcp('should support allow-all policy', (c) => [
    {
      description: "Creating a network policy which allows all traffic; testing pods can connect to both ports when an 'allow-all' policy is present",
      apply: [policy(NS_X, 'allow-all', {}, { ingress: [{}] })],
      probes: [probe(c, 80, 'TCP', reach(c)), probe(c, 81, 'TCP', reach(c))],
    },
  ]),

  tcp('should allow ingress access on one named port', (c) => [
    {
      description: 'Blocking all ports other then 81 in the entire namespace (named port serve-81-tcp, protocol omitted)',
      apply: [policy(NS_X, 'allow-all', {}, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
      probes: [probe(c, 81, 'TCP', reach(c)), probe(c, 80, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false))],
    },
  ]),

  tcp('should allow ingress access from namespace on one named port', (c) => [
    {
      description:
        'x/a allows ingress from namespace y on named port serve-80-tcp; verify port 80 is allowed for namespace y, and port 81 is blocked for all namespaces including y',
      apply: [
        policy(NS_X, 'allow-client-a-via-ns-selector-80', matchLabels({ pod: 'a' }), {
          ingress: [{ from: [{ namespaceSelector: nsName(NS_Y) }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
        ),
        probe(c, 81, 'TCP', reach(c).expectAllIngress('x/a', false)),
      ],
    },
  ]),

  tcp('should allow egress access on one named port', (c) => [
    {
      description: 'validating egress from port 81 to port 80: all pods in x may egress only to named port serve-80-tcp',
      apply: [policy(NS_X, 'allow-egress', {}, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
      probes: [probe(c, 80, 'TCP', reach(c)), probe(c, 81, 'TCP', reach(c).expectPeer({ namespace: NS_X }, {}, false))],
    },
  ]),

  tcp('should enforce updated policy', (c) => [
    {
      description: 'Using the simplest possible mutation: start with allow all',
      apply: [policy(NS_X, 'allow-all-mutate-to-deny-all', {}, { ingress: [{}] })],
      probes: [probe(c, 81, 'TCP', reach(c))],
    },
    {
      description: 'then switch to deny all (update the same policy: ingress rules emptied)',
      apply: [policy(NS_X, 'allow-all-mutate-to-deny-all', {}, { ingress: [] })],
      probes: [probe(c, 81, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false))],
    },
  ]),

  tcp('should allow ingress access from updated namespace', (c) => [
    {
      description: 'x/a allows ingress only from namespaces labelled ns2=updated (none yet)',
      apply: [
        policy(NS_X, 'allow-client-a-via-ns-selector', matchLabels({ pod: 'a' }), {
          ingress: [from({ namespaceSelector: matchLabels({ ns2: 'updated' }) })],
        }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
    {
      description: 'add label ns2=updated to namespace y',
      apply: [c.namespaceWithLabels(NS_Y, { ns2: 'updated' })],
      probes: [
        probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expectPeer({ namespace: NS_Y }, {}, true)),
      ],
    },
  ]),

  tcp('should allow ingress access from updated pod', (c) => [
    {
      description: 'x/a allows ingress only from pods labelled pod=b,pod2=updated (none yet)',
      apply: [
        policy(NS_X, 'allow-client-a-via-pod-selector', matchLabels({ pod: 'a' }), {
          ingress: [from({ podSelector: matchLabels({ pod: 'b', pod2: 'updated' }) })],
        }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
    {
      description: 'x/b is able to reach x/a when label is updated (add pod2=updated to x/b)',
      apply: [c.podWithLabels('x/b', { pod: 'b', pod2: 'updated' })],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expect('x/b', 'x/a', true))],
    },
  ]),

  tcp('should deny ingress from pods on other namespaces', (c) => [
    {
      description: 'all pods in x allow ingress only from pods in x (empty podSelector peer)',
      apply: [policy(NS_X, 'deny-empty-policy', {}, { ingress: [from({ podSelector: {} })] })],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_Y }, { namespace: NS_X }, false)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X }, false),
        ),
      ],
    },
  ]),

  tcp('should deny ingress access to updated pod', (c) => [
    {
      description: 'Verify that everything can reach x/a (deny-ingress policy selects target=isolated, no pod yet)',
      apply: [policy(NS_X, 'deny-ingress-via-label-selector', matchLabels({ target: 'isolated' }), { ingress: [] })],
      probes: [probe(c, 80, 'TCP', reach(c))],
    },
    {
      description: 'add label target=isolated to x/a',
      apply: [c.podWithLabels('x/a', { target: 'isolated' })],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
  ]),

  tcp('should deny egress from pods based on PodSelector', (c) => [
    {
      description: 'x/a denies all egress',
      apply: [policy(NS_X, 'deny-egress-pod-a', matchLabels({ pod: 'a' }), { egress: [] })],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllEgress('x/a', false))],
    },
  ]),

  tcp('should deny egress from all pods in a namespace', (c) => [
    {
      description: 'all pods in x deny all egress',
      apply: [policy(NS_X, 'deny-egress-ns-x', {}, { egress: [] })],
      probes: [probe(c, 80, 'TCP', reach(c).expectPeer({ namespace: NS_X }, {}, false))],
    },
  ]),

  tcp('should work with Ingress, Egress specified together', (c) => [
    {
      description:
        'x/a allows ingress from pod=b and egress to port 80 only (numeric port, protocol omitted); validating that port 81 does not work',
      apply: [
        policy(NS_X, 'allow-client-a-via-pod-selector', matchLabels({ pod: 'a' }), {
          ingress: [from({ podSelector: podLabel('b') })],
          egress: [{ ports: [{ port: 80 }] }],
          policyTypes: ['Egress', 'Ingress'],
        }),
      ],
      probes: [
        probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false).expect('x/b', 'x/a', true)),
        probe(
          c,
          81,
          'TCP',
          reach(c).expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/b', 'x/a', true),
        ),
      ],
    },
  ]),

  tcp(
    'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    (c) => {
      const fromXA: NetworkPolicyIngressRuleObject = from({ namespaceSelector: nsName(NS_X), podSelector: podLabel('a') });
      return [
        {
          description:
            'x/a may egress only to y/a; y/a and y/b both allow ingress from x/a; x/a -> y/b is denied by the egress policy',
          apply: [
            policy(NS_X, 'allow-to-ns-y-pod-a', matchLabels({ pod: 'a' }), {
              egress: [to({ namespaceSelector: nsName(NS_Y), podSelector: podLabel('a') })],
            }),
            policy(NS_Y, 'allow-from-xa-on-ya-match-selector', matchLabels({ pod: 'a' }), { ingress: [fromXA] }),
            policy(NS_Y, 'allow-from-xa-on-yb-match-selector', matchLabels({ pod: 'b' }), { ingress: [fromXA] }),
          ],
          probes: [
            probe(
              c,
              80,
              'TCP',
              reach(c)
                .expectPeer({ namespace: NS_X, pod: 'a' }, {}, false)
                .expectPeer({}, { namespace: NS_Y, pod: 'a' }, false)
                .expectPeer({ namespace: NS_X, pod: 'a' }, { namespace: NS_Y, pod: 'a' }, true)
                .expectPeer({}, { namespace: NS_Y, pod: 'b' }, false),
            ),
          ],
        },
      ];
    },
  ),

  tcp(
    'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    (c) => [
      {
        description: 'x/a may egress only to pod=a in namespace y',
        apply: [
          policy(NS_X, 'allow-to-ns-y-pod-a', matchLabels({ pod: 'a' }), {
            egress: [to({ namespaceSelector: nsName(NS_Y), podSelector: podLabel('a') })],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expectAllEgress('x/a', false).expect('x/a', 'y/a', true))],
      },
    ],
  ),

  tcp('should enforce ingress policy allowing any port traffic to a server on a specific protocol', (c) => [
    {
      description: 'x/a allows ingress on every TCP port (protocol only, no port)',
      apply: [policy(NS_X, 'allow-ingress-by-proto', matchLabels({ pod: 'a' }), { ingress: [{ ports: [{ protocol: 'TCP' }] }] })],
      probes: [
        probe(c, 80, 'TCP', reach(c)),
        probe(c, 80, 'UDP', reach(c).expectPeer({}, { namespace: NS_X, pod: 'a' }, false)),
      ],
    },
  ]),

  tcp('should enforce multiple ingress policies with ingress allow-all policy taking precedence', (c) => [
    {
      description: "The policy targets port 80 -- so let's make sure traffic on port 81 is blocked",
      apply: [policy(NS_X, 'allow-ingress-port-80', {}, { ingress: [{ ports: [{ port: 80 }] }] })],
      probes: [probe(c, 81, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false))],
    },
    {
      description: 'Allowing all ports',
      apply: [policy(NS_X, 'allow-ingress', {}, { ingress: [{}] })],
      probes: [probe(c, 81, 'TCP', reach(c))],
    },
  ]),

  tcp('should enforce multiple egress policies with egress allow-all policy taking precedence', (c) => [
    {
      description: "Making sure ingress doesn't work other than port 80 (egress of x allowed to port 80 only)",
      apply: [policy(NS_X, 'allow-egress-port-80', {}, { egress: [{ ports: [{ port: 80 }] }] })],
      probes: [probe(c, 81, 'TCP', reach(c).expectPeer({ namespace: NS_X }, {}, false))],
    },
    {
      description: 'Allowing all ports',
      apply: [policy(NS_X, 'allow-egress', {}, { egress: [{}] })],
      probes: [probe(c, 81, 'TCP', reach(c))],
    },
  ]),

  tcp('should stop enforcing policies after they are deleted', (c) => [
    {
      description: 'Creating a network policy for the server which denies all traffic (into and out of x)',
      apply: [policy(NS_X, 'deny-all', {}, { ingress: [], egress: [] })],
      probes: [
        probe(c, 80, 'TCP', reach(c).expectPeer({ namespace: NS_X }, {}, false).expectPeer({}, { namespace: NS_X }, false)),
      ],
    },
    {
      description: 'delete every network policy (upstream cleanNetworkPolicies); all connectivity works again',
      delete: [{ kind: 'NetworkPolicy', namespace: NS_X, name: 'deny-all' }],
      probes: [probe(c, 80, 'TCP', reach(c))],
    },
  ]),

  tcp(
    'should allow egress access to server in CIDR block',
    (c) => [
      {
        description: 'x/a may egress only to the ipBlock <y/b IP>/32',
        apply: [
          policy(NS_X, 'allow-client-a-via-cidr-egress-rule', matchLabels({ pod: 'a' }), {
            egress: [to({ ipBlock: { cidr: hostCidr(c.podIp('y/b', 4)) } })],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expectAllEgress('x/a', false).expect('x/a', 'y/b', true))],
      },
    ],
    [4],
  ),

  tcp(
    'should enforce except clause while egress access to server in CIDR block',
    (c) => [
      {
        description: 'x/a may egress only to the /4 around its own IP, except <x/b IP>/32',
        apply: [
          policy(NS_X, 'allow-client-a-via-cidr-egress-rule', matchLabels({ pod: 'a' }), {
            egress: [
              to({ ipBlock: { cidr: largeCidrForIp(c.podIp('x/a', 4)), except: [hostCidr(c.podIp('x/b', 4))] } }),
            ],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expect('x/a', 'x/b', false))],
      },
    ],
    [4],
  ),

  tcp(
    'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
    (c) => [
      {
        description: 'x/a may egress only to the /4 around its own IP, except <x/b IP>/32',
        apply: [
          policy(NS_X, 'allow-client-a-via-cidr-egress-rule', matchLabels({ pod: 'a' }), {
            egress: [
              to({ ipBlock: { cidr: largeCidrForIp(c.podIp('x/a', 4)), except: [hostCidr(c.podIp('x/b', 4))] } }),
            ],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expect('x/a', 'x/b', false))],
      },
      {
        description: 'update the same policy to allow egress only to <x/b IP>/32',
        apply: [
          policy(NS_X, 'allow-client-a-via-cidr-egress-rule', matchLabels({ pod: 'a' }), {
            egress: [to({ ipBlock: { cidr: hostCidr(c.podIp('x/b', 4)) } })],
          }),
        ],
        probes: [probe(c, 80, 'TCP', reach(c).expectAllEgress('x/a', false).expect('x/a', 'x/b', true))],
      },
    ],
    [4],
  ),

  tcp('should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector', (c) => [
    {
      description: 'Creating a network policy for pod-a which allows Egress traffic to pod-b (allow all egress)',
      apply: [policy(NS_X, 'allow-egress-for-target', matchLabels({ pod: 'a' }), { egress: [{}] })],
      probes: [probe(c, 80, 'TCP', reach(c))],
    },
    {
      description: 'Creating a network policy for pod-a that denies traffic from pod-b (deny all ingress)',
      apply: [policy(NS_X, 'deny-ingress-via-label-selector', matchLabels({ pod: 'a' }), { ingress: [] })],
      probes: [probe(c, 80, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
  ]),

  tcp("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP", (c) => [
    {
      description:
        'Creating a default-deny ingress policy and a policy for x/a allowing only SCTP on port 81; trying to connect to TCP port 81, which should be blocked by the deny-ingress policy',
      apply: [
        policy(NS_X, 'deny-ingress', {}, { ingress: [] }),
        policy(NS_X, 'allow-only-sctp-ingress-on-port-81', matchLabels({ pod: 'a' }), {
          ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }],
        }),
      ],
      probes: [probe(c, 81, 'TCP', reach(c).expectPeer({}, { namespace: NS_X }, false))],
    },
  ]),

  tcp("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", (c) => [
    {
      description:
        'Creating a network policy for the server which allows traffic only via SCTP on port 80; trying to connect to TCP port 81, which should be blocked by implicit isolation',
      apply: [
        policy(NS_X, 'allow-only-sctp-ingress-on-port-80', matchLabels({ pod: 'a' }), {
          ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }],
        }),
      ],
      probes: [probe(c, 81, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
  ]),

  tcp('should not allow access by TCP when a policy specifies only UDP', (c) => [
    {
      description: 'Creating a network policy for the server which allows traffic only via UDP on port 81; probing with TCP',
      apply: [
        policy(NS_X, 'allow-only-udp-ingress-on-port-81', matchLabels({ pod: 'a' }), {
          ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }],
        }),
      ],
      probes: [probe(c, 81, 'TCP', reach(c).expectAllIngress('x/a', false))],
    },
  ]),

  tcp('should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label', (c) => [
    {
      description: 'x/a allows ingress only from namespace y via the immutable kubernetes.io/metadata.name label',
      apply: [
        policy(NS_X, 'allow-client-a-via-ns-selector-for-immutable-ns-label', matchLabels({ pod: 'a' }), {
          ingress: [from({ namespaceSelector: nsName(NS_Y) })],
        }),
      ],
      probes: [
        probe(
          c,
          80,
          'TCP',
          reach(c)
            .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
            .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
        ),
      ],
    },
  ]),

  tcp('should enforce policy based on NamespaceSelector with MatchExpressions using default ns label', (c) => [
    {
      description: 'x/a may egress only to namespaces with kubernetes.io/metadata.name NotIn [y]',
      apply: [
        policy(NS_X, 'allow-ns-y-match-selector-for-immutable-ns-label', matchLabels({ pod: 'a' }), {
          egress: [to({ namespaceSelector: matchExpression(METADATA_NAME_LABEL_KEY, 'NotIn', [NS_Y]) })],
        }),
      ],
      probes: [probe(c, 80, 'TCP', reach(c).expectPeer({ namespace: NS_X, pod: 'a' }, { namespace: NS_Y }, false))],
    },
  ]),
];

/** The UDP and SCTP contexts run the same three tests with a different protocol. */
function protocolCases(context: string, protocol: 'UDP' | 'SCTP'): ConformanceCase[] {
  return [
    {
      name: "should support a 'default-deny-ingress' policy",
      context,
      ipFamilies: BOTH,
      build: (c) => [
        {
          description: 'deny-all (ingress) in x',
          apply: [policy(NS_X, 'deny-all', {}, { ingress: [] })],
          probes: [probe(c, 80, protocol, reach(c).expectPeer({}, { namespace: NS_X }, false))],
        },
      ],
    },
    {
      name: 'should enforce policy based on Ports',
      context,
      ipFamilies: BOTH,
      build: (c) => [
        {
          description: `Creating a network allowPort81Policy which only allows allow listed namespaces (y) to connect on exactly one port (81/${protocol})`,
          apply: [
            policy(NS_X, 'allow-ingress-on-port-81-ns-x', matchLabels({ pod: 'a' }), {
              ingress: [{ from: [{ namespaceSelector: nsName(NS_Y) }], ports: [{ port: 81, protocol }] }],
            }),
          ],
          probes: [
            probe(
              c,
              81,
              protocol,
              reach(c)
                .expectPeer({ namespace: NS_X }, { namespace: NS_X, pod: 'a' }, false)
                .expectPeer({ namespace: NS_Z }, { namespace: NS_X, pod: 'a' }, false),
            ),
          ],
        },
      ],
    },
    {
      name: 'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
      context,
      ipFamilies: BOTH,
      build: (c) => [
        {
          description: 'x/a allows ingress only from pod=a in namespace y',
          apply: [
            policy(NS_X, 'allow-ns-y-pod-a-via-namespace-pod-selector', matchLabels({ pod: 'a' }), {
              ingress: [from({ namespaceSelector: nsName(NS_Y), podSelector: podLabel('a') })],
            }),
          ],
          probes: [probe(c, 80, protocol, reach(c).expectAllIngress('x/a', false).expect('y/a', 'x/a', true))],
        },
      ],
    },
  ];
}

export const upstreamCases: ConformanceCase[] = [
  ...tcpCases,
  ...protocolCases(CONTEXT_UDP, 'UDP'),
  ...protocolCases(CONTEXT_SCTP, 'SCTP'),
];

export const skippedUpstreamCases: SkippedUpstreamCase[] = [
  {
    name: 'should support creating NetworkPolicy API operations',
    context: CONTEXT_API,
    reason:
      'network_policy_api.go: exercises the API server (discovery, create/get/list/watch/patch/update/delete/deletecollection of NetworkPolicy objects); no traffic is probed',
  },
  {
    name: 'should support creating NetworkPolicy API with endport field',
    context: CONTEXT_API,
    reason:
      'network_policy_api.go: checks API-server validation of endPort (requires a numeric port, endPort >= port); no traffic is probed',
  },
];

/** All objects a case applies, over all its steps (handy for validation). */
export function appliedObjects(steps: readonly Step[]): KubeObject[] {
  return steps.flatMap((s) => s.apply ?? []);
}
