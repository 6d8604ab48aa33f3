// NetworkPolicy v1 semantics beyond the upstream suite, one rule of the API reference per test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeObjects } from '../../src/source';
import { makeNamespace, makePod, makePolicy, verdict } from '../support/builders';

const ns = (name: string, labels: Record<string, string> = {}) => makeNamespace(name, labels);

test('named ports resolve per pod: ingress against the selected pod, egress against the peer', () => {
  const objects = [
    ns('a'),
    makePod('a', 'web1', { labels: { app: 'web' }, ips: ['10.0.0.1'], ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }] }),
    makePod('a', 'web2', { labels: { app: 'web' }, ips: ['10.0.0.2'], ports: [{ name: 'http', containerPort: 9090 }, { containerPort: 8080 }] }),
    makePod('a', 'client', { labels: { app: 'client' }, ips: ['10.0.0.3'], ports: [{ containerPort: 80 }] }),
    makePolicy('a', 'web-http', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }] }] }),
  ];
  assert.equal(verdict(objects, 'a/client', 'a/web1', 8080), true);
  assert.equal(verdict(objects, 'a/client', 'a/web1', 9090), false);
  assert.equal(verdict(objects, 'a/client', 'a/web2', 9090), true);
  assert.equal(verdict(objects, 'a/client', 'a/web2', 8080), false);
  const egress = [...objects.slice(0, 4), makePolicy('a', 'client-out', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http' }] }] })];
  assert.equal(verdict(egress, 'a/client', 'a/web1', 8080), true);
  assert.equal(verdict(egress, 'a/client', 'a/web1', 9090), false);
  assert.equal(verdict(egress, 'a/client', 'a/web2', 9090), true);
  assert.equal(verdict(egress, 'a/client', 'a/web2', 8080), false);
});

test('a named port with another protocol, or one the pod does not declare, matches nothing', () => {
  const objects = [
    ns('a'),
    makePod('a', 'dns', { labels: { app: 'dns' }, ips: ['10.0.0.1'], ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { containerPort: 53, protocol: 'TCP' }] }),
    makePod('a', 'c', { ips: ['10.0.0.2'] }),
    makePolicy('a', 'p', { podSelector: { matchLabels: { app: 'dns' } }, ingress: [{ ports: [{ port: 'dns', protocol: 'TCP' }, { port: 'nope' }] }] }),
  ];
  assert.equal(verdict(objects, 'a/c', 'a/dns', 53, 'TCP'), false);
  assert.equal(verdict(objects, 'a/c', 'a/dns', 53, 'UDP'), false);
});

test('endPort allows the whole range and nothing outside it', () => {
  const objects = [
    ns('a'),
    makePod('a', 's', { labels: { app: 's' }, ips: ['10.0.0.1'], ports: [{ containerPort: 7999 }, { containerPort: 8000 }, { containerPort: 8050 }, { containerPort: 8100 }, { containerPort: 8101 }] }),
    makePod('a', 'c', { ips: ['10.0.0.2'] }),
    makePolicy('a', 'p', { podSelector: { matchLabels: { app: 's' } }, ingress: [{ ports: [{ port: 8000, endPort: 8100 }] }] }),
  ];
  assert.deepEqual([7999, 8000, 8050, 8100, 8101].map((p) => verdict(objects, 'a/c', 'a/s', p)), [false, true, true, true, false]);
});

test('ipBlock except carves ranges out, nested and overlapping excepts included, IPv4 and IPv6', () => {
  const pods = [
    makePod('a', 's', { labels: { app: 's' }, ips: ['10.0.0.1', 'fd00::1'] }),
    makePod('a', 'in', { ips: ['10.1.0.5', 'fd00:1::5'] }),
    makePod('a', 'hole', { ips: ['10.1.2.5', 'fd00:1:0:2::5'] }),
    makePod('a', 'nested', { ips: ['10.1.2.130', 'fd00:1:0:2::8000'] }),
  ];
  const objects = [ns('a'), ...pods, makePolicy('a', 'p', {
    podSelector: { matchLabels: { app: 's' } },
    ingress: [{ from: [
      { ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.2.0/24', '10.1.2.0/25', '10.1.3.0/24'] } },
      { ipBlock: { cidr: '10.1.2.128/25' } }, // a second peer re-allows part of the hole
      { ipBlock: { cidr: 'fd00:1::/48', except: ['fd00:1:0:2::/64'] } },
    ] }],
  })];
  assert.equal(verdict(objects, 'a/in', 'a/s', 80), true);
  assert.equal(verdict(objects, 'a/hole', 'a/s', 80), false);
  assert.equal(verdict(objects, 'a/nested', 'a/s', 80), true);
  assert.equal(verdict(objects, 'a/in', 'a/s', 80, 'TCP', 6), true);
  assert.equal(verdict(objects, 'a/hole', 'a/s', 80, 'TCP', 6), false);
});

test('host-network pods are neither isolated nor selected; finished and address-less pods add nothing', () => {
  const objects = [
    ns('a'),
    makePod('a', 's', { labels: { app: 's' }, ips: ['10.0.0.1'] }),
    makePod('a', 'host', { labels: { ok: 'yes' }, ips: ['192.168.0.1'], hostNetwork: true }),
    makePod('a', 'done', { labels: { ok: 'yes' }, ips: ['10.0.0.9'], phase: 'Succeeded' }),
    makePod('a', 'new', { labels: { ok: 'yes' }, ips: ['10.0.0.3'] }),
    makePolicy('a', 'p', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { ok: 'yes' } } }] }] }),
  ];
  assert.equal(verdict(objects, 'a/new', 'a/s', 80), true);
  assert.equal(verdict(objects, 'a/host', 'a/s', 80), false, 'a host-network pod is not a selected peer');
  assert.equal(verdict(objects, 'a/s', 'a/host', 80), true, 'a host-network pod is never isolated');
  // The finished pod's old address is reused by a new pod without the label: it must not inherit rules.
  const reuse = [...objects, makePod('a', 'reuser', { ips: ['10.0.0.9'] })];
  assert.equal(verdict(reuse, 'a/reuser', 'a/s', 80), false);
});

test('policyTypes: Ingress always by default, Egress only with egress rules; union of policies', () => {
  const base = [ns('a'), makePod('a', 'x', { labels: { app: 'x' }, ips: ['10.0.0.1'] }), makePod('a', 'y', { ips: ['10.0.0.2'] })];
  const egressOnly = [...base, makePolicy('a', 'p', { podSelector: { matchLabels: { app: 'x' } }, egress: [{ to: [{ podSelector: { matchLabels: { app: 'x' } } }] }] })];
  assert.equal(verdict(egressOnly, 'a/y', 'a/x', 80), false, 'no policyTypes: the policy isolates ingress too');
  assert.equal(verdict(egressOnly, 'a/x', 'a/y', 80), false, 'egress rules present: egress isolated');
  const noEgress = [...base, makePolicy('a', 'p', { podSelector: { matchLabels: { app: 'x' } }, ingress: [{}], egress: [] })];
  assert.equal(verdict(noEgress, 'a/x', 'a/y', 80), true, 'empty egress list and no policyTypes: egress not isolated');
  assert.equal(verdict(noEgress, 'a/y', 'a/x', 80), true, 'ingress: [{}] allows everything');
  const union = [...egressOnly, makePolicy('a', 'q', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }] }] })];
  assert.equal(verdict(union, 'a/y', 'a/x', 80), true, 'another policy selecting the pod adds its allows');
});

test('peers: namespaceSelector alone, podSelector alone (own namespace), both (AND); matchExpressions', () => {
  const objects = [
    ns('a', { team: 'blue' }), ns('b', { team: 'red' }),
    makePod('a', 's', { labels: { app: 's' }, ips: ['10.0.0.1'] }),
    makePod('a', 'm', { labels: { role: 'm' }, ips: ['10.0.0.2'] }),
    makePod('b', 'm', { labels: { role: 'm' }, ips: ['10.0.1.2'] }),
    makePod('b', 'o', { labels: { role: 'o' }, ips: ['10.0.1.3'] }),
    makePolicy('a', 'p', { podSelector: { matchLabels: { app: 's' } }, ingress: [{ from: [{
      namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['blue'] }] },
      podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['m'] }] },
    }] }] }),
  ];
  assert.equal(verdict(objects, 'b/m', 'a/s', 80), true);
  assert.equal(verdict(objects, 'b/o', 'a/s', 80), false);
  assert.equal(verdict(objects, 'a/m', 'a/s', 80), false);
});

test('invalid objects are refused with the object and the field named', () => {
  const bad = (spec: object): string => {
    try {
      decodeObjects([makePolicy('a', 'bad', spec)], 'f.yaml');
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  assert.match(bad({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Foo' }] } }), /f\.yaml: NetworkPolicy a\/bad: spec\.podSelector\.matchExpressions\[0\]\.operator: invalid operator "Foo"/);
  assert.match(bad({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }), /spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr: "10\.0\.0\.0\/33" is not a valid CIDR/);
  assert.match(bad({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }), /must be a strict subset/);
  assert.match(bad({ podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }), /not a valid IANA_SVC_NAME/);
  assert.match(bad({ podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 79 }] }] }), /endPort: must be an integer from port \(80\)/);
  assert.match(bad({ podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: 'ICMP' }] }] }), /unsupported protocol "ICMP"/);
  assert.match(bad({ podSelector: {}, ingress: [{ from: [{}] }] }), /a peer must set podSelector, namespaceSelector or ipBlock/);
});
