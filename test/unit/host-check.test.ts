import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCniShape } from '../../src/dataplane';
import type { HostFiles } from '../../src/dataplane';

function host(files: Record<string, string>, dirs: Record<string, string[]>): HostFiles {
  return { read: (p) => files[p] ?? null, list: (d) => dirs[d] ?? [] };
}

test('routed pod interfaces need nothing', () => {
  const shape = checkCniShape(host({}, { '/sys/class/net': ['lo', 'eth0', 'cali1'] }));
  assert.equal(shape.shape, 'routed');
  assert.equal(shape.problem, null);
});

test('a pod bridge without br_netfilter is reported with the fix', () => {
  const shape = checkCniShape(host({}, { '/sys/class/net': ['cni0', 'veth1'], '/sys/class/net/cni0/brif': ['veth1'] }));
  assert.equal(shape.shape, 'bridged');
  assert.match(shape.problem ?? '', /br_netfilter is not loaded.*modprobe br_netfilter/);
});

test('a pod bridge with bridge-nf-call-ip6tables off is reported; both on is fine', () => {
  const dirs = { '/sys/class/net': ['cni0'], '/sys/class/net/cni0/brif': ['veth1'] };
  const off = checkCniShape(host({ '/proc/sys/net/bridge/bridge-nf-call-iptables': '1\n', '/proc/sys/net/bridge/bridge-nf-call-ip6tables': '0\n' }, dirs));
  assert.match(off.problem ?? '', /net\.bridge\.bridge-nf-call-ip6tables is 0/);
  const on = checkCniShape(host({ '/proc/sys/net/bridge/bridge-nf-call-iptables': '1\n', '/proc/sys/net/bridge/bridge-nf-call-ip6tables': '1\n' }, dirs));
  assert.equal(on.problem, null);
  assert.deepEqual(on.bridges, ['cni0']);
});
