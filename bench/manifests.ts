// The engine's records written back as the Kubernetes objects they came from: the benchmarks feed them
// to the file datastore and to the real API server, so they go through the agent's own parsing.
import type { NamespaceState, PodState, PolicyPeer, PolicyRule, PolicyState, PortSpec, Selector } from '../src/api';

export function selectorJson(s: Selector): object {
  return { matchExpressions: s.requirements.map((r) => (r.operator === 'Exists' || r.operator === 'DoesNotExist' ? { key: r.key, operator: r.operator } : { key: r.key, operator: r.operator, values: r.values })) };
}

function peerJson(p: PolicyPeer): object {
  if (p.kind === 'ipBlock') return { ipBlock: { cidr: p.cidr, except: p.except } };
  return { podSelector: selectorJson(p.podSelector), ...(p.namespaceSelector === null ? {} : { namespaceSelector: selectorJson(p.namespaceSelector) }) };
}

function portJson(p: PortSpec): object {
  switch (p.kind) {
    case 'number':
      return { protocol: p.protocol, port: p.port, ...(p.endPort !== p.port ? { endPort: p.endPort } : {}) };
    case 'named':
      return { protocol: p.protocol, port: p.name };
    case 'allPorts':
      return { protocol: p.protocol };
  }
}

function ruleJson(r: PolicyRule, peersField: 'from' | 'to'): object {
  return { ...(r.peers === null ? {} : { [peersField]: r.peers.map(peerJson) }), ...(r.ports === null ? {} : { ports: r.ports.map(portJson) }) };
}

export function policyJson(p: PolicyState): object {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
    metadata: { namespace: p.namespace, name: p.name },
    spec: {
      podSelector: selectorJson(p.podSelector),
      policyTypes: [...(p.ingressIsolation ? ['Ingress'] : []), ...(p.egressIsolation ? ['Egress'] : [])],
      ingress: p.ingress.map((r) => ruleJson(r, 'from')),
      egress: p.egress.map((r) => ruleJson(r, 'to')),
    },
  };
}

export function podJson(p: PodState): object {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { namespace: p.namespace, name: p.name, uid: p.uid, labels: p.labels },
    spec: { nodeName: p.nodeName, containers: [{ name: 'c', ports: p.ports.map((c) => ({ name: c.name, containerPort: c.port, protocol: c.protocol })) }] },
    status: { phase: p.phase, podIPs: p.ips.map((ip) => ({ ip })) },
  };
}

export function namespaceJson(n: NamespaceState): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name, labels: n.labels } };
}
