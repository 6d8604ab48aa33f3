// FakeNft against the kernel: the same transactions, including failing ones,
// go to both, in a throwaway network namespace; after each step the outcomes
// (success, or the error code) and the normalized listings must agree.
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns) and the nftables-napi
// addon. Touches no nftables state outside the namespaces it creates.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { viewFromSnapshot } from '../../src/dataplane/diff';
import {
  KernelNftBackend,
  NftApplyError,
  Transaction,
  accept,
  counter,
  ctState,
  drop,
  icmpv6NeighborDiscovery,
  icmpv6Type,
  jump,
  log,
  matchSet,
  limit,
  openNftContext,
  ret,
  vmap,
  type NftApplyErrorCode,
  type NftBackend,
  type TableSnapshot,
} from '../../src/dataplane/nft';
import { FakeNft } from '../support/fake-nft';

const T = 'netpol-test';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let nsCounter = 0;
const liveNetns = new Set<string>();

/** Creates `nftag-<pid>-<n>` and returns its name; the caller deletes it. */
function addNetns(): string {
  const name = `nftag-${process.pid}-${nsCounter++}`;
  execFileSync('ip', ['netns', 'add', name]);
  liveNetns.add(name);
  return name;
}

function deleteNetns(name: string): void {
  liveNetns.delete(name);
  execFileSync('ip', ['netns', 'delete', name]);
}

// Backstop for a run that dies before its finally blocks (only our own names).
process.on('exit', () => {
  for (const name of liveNetns) {
    try {
      execFileSync('ip', ['netns', 'delete', name]);
    } catch (err) {
      process.stderr.write(`could not delete netns ${name}: ${String(err)}\n`);
    }
  }
});

type Outcome = 'ok' | NftApplyErrorCode;

/** A listing as the dataplane compares it (order-insensitive where the kernel and the fake order differently). */
/** What is compared: the view the diff reads, and each chain's counters (which rules have one, and their values). */
function viewOf(snap: TableSnapshot | null): { view: ReturnType<typeof viewFromSnapshot>; counters: Record<string, unknown> } | null {
  return snap === null ? null : { view: viewFromSnapshot(snap), counters: Object.fromEntries(snap.chains.map((c) => [c.name, c.counters])) };
}

/** The outcome of a run/check, and the error message for assertion texts. */
async function outcome(p: Promise<void>): Promise<{ readonly code: Outcome; readonly message: string }> {
  try {
    await p;
    return { code: 'ok', message: '' };
  } catch (err) {
    if (err instanceof NftApplyError) return { code: err.nftCode, message: err.message };
    throw err;
  }
}

interface Step {
  readonly name: string;
  readonly expect: Outcome;
  /** Builds the transaction; `snap` is the backend's own listing (handles differ between backends). */
  build(t: Transaction, snap: TableSnapshot | null): void;
}


const STEPS: readonly Step[] = [
  { name: 'delete a missing table', expect: 'ENOENT', build: (t) => t.delete({ kind: 'table' }) },
  { name: 'chain without table', expect: 'ENOENT', build: (t) => t.add({ kind: 'chain', name: 'a' }) },
  {
    name: 'build the table',
    expect: 'ok',
    build: (t) => {
      t.add({ kind: 'table' });
      t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } });
      t.add({ kind: 'chain', name: 'fwd-0', base: { type: 'filter', hook: 'forward', priority: -150, policy: 'accept' } });
      t.add({ kind: 'chain', name: 'a' });
      t.add({ kind: 'chain', name: 'b' });
      t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'] });
      t.add({ kind: 'set', name: 'h6', type: ['ipv6_addr'] });
      t.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'c1', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'pp', type: ['inet_proto', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'hx', type: ['ipv4_addr', 'inet_proto', 'inet_service'] });
      t.add({ kind: 'set', name: 'hx6', type: ['ipv6_addr', 'inet_proto', 'inet_service'] });
      t.add({ kind: 'set', name: 'pr', type: ['inet_proto'] });
      t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'] });
      t.add({ kind: 'map', name: 'mi', type: ['ipv4_addr', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] });
      t.add({ kind: 'element', set: 's4', key: ['10.1.0.1-10.1.0.9'] });
      t.add({ kind: 'element', set: 's4', key: ['10.2.0.0-10.2.0.255'] });
      t.add({ kind: 'element', set: 's4', key: ['10.3.0.7/32'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.9.9.10'] });
      t.add({ kind: 'element', set: 'h6', key: ['FD00:0::0:1'] });
      t.add({ kind: 'element', set: 'h6', key: ['::ffff:1.2.3.4'] });
      t.add({ kind: 'element', set: 'h6', key: ['2001:db8:0:0:1:0:0:1'] });
      t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
      t.add({ kind: 'element', set: 'cc', key: ['10.0.0.9', 'udp', 53] });
      t.add({ kind: 'element', set: 'c1', key: ['10.0.0.0/24', 'tcp', '80-90'] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.9', 'udp', 53] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.10', 'tcp', '80'] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.11', 'sctp', '80'] });
      t.add({ kind: 'element', set: 'hx6', key: ['fd00::1', 'tcp', '443'] });
      t.add({ kind: 'element', set: 'pp', key: ['tcp', '0-65535'] });
      t.add({ kind: 'element', set: 'pp', key: ['sctp', '1024-2047'] });
      t.add({ kind: 'element', set: 'pr', key: ['tcp'] });
      t.add({ kind: 'element', set: 'pr', key: ['udp'] });
      t.add({ kind: 'element', set: 'pr', key: ['sctp'] });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: 'accept' });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.3'], value: { jump: 'b' } });
      t.add({ kind: 'element', set: 'mi', key: ['10.0.0.0/8', '80-81'], value: 'drop' });
      t.add({ kind: 'rule', chain: 'input', body: [ctState('related', 'established'), accept()] });
      t.add({ kind: 'rule', chain: 'input', body: [ctState('invalid'), drop()] });
      t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr'], 's4'), counter(), jump('a')] });
      t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'hx'), accept()] });
      t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip6 saddr', 'meta l4proto', 'th dport'], 'hx6'), accept()] });
      t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'cc'), drop()] });
      t.add({ kind: 'rule', chain: 'input', body: [matchSet(['meta l4proto', 'th dport'], 'pp'), matchSet(['ip6 saddr'], 'h6'), ret()] });
      t.add({ kind: 'rule', chain: 'input', body: [vmap(['ip saddr'], 'm4')] });
      t.add({ kind: 'rule', chain: 'input', body: [vmap(['ip saddr', 'th dport'], 'mi')] });
      t.add({ kind: 'rule', chain: 'fwd-0', body: [ctState('new'), jump('a')] });
      t.add({ kind: 'rule', chain: 'fwd-0', body: [limit(10, 'second'), log({ prefix: 'np drop: ', group: 2 }), counter(), accept()] });
      t.add({ kind: 'rule', chain: 'fwd-0', body: [limit(7, 'minute', 9), log(), drop()] });
      t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 's4'), log({ prefix: 'np drop: ' }), counter(), drop()] });
      t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip daddr'], 'h4'), matchSet(['meta l4proto'], 'pr'), log({ group: 1 }), accept()] });
      t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip6 daddr'], 'h6'), icmpv6NeighborDiscovery(), accept()] });
      t.add({ kind: 'rule', chain: 'a', body: [icmpv6Type('nd-redirect', 'nd-router-advert'), accept()] });
      t.add({ kind: 'rule', chain: 'a', body: [icmpv6Type('nd-neighbor-solicit'), counter(), accept()] });
    },
  },
  {
    name: 'adding everything again is a no-op',
    expect: 'ok',
    build: (t) => {
      t.add({ kind: 'table' });
      t.add({ kind: 'chain', name: 'input' });
      t.add({ kind: 'chain', name: 'a' });
      t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
      t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'] });
      t.add({ kind: 'element', set: 's4', key: ['10.0.0.0-10.0.0.255'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
      t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.10', 'tcp', '80'] });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
    },
  },
  { name: 'concat hash: a range is refused', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'hx', key: ['10.0.0.10', 'tcp', '80-81'] }) },
  { name: 'concat hash: a prefix is refused', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'hx', key: ['10.0.0.0/24', 'tcp', '80'] }) },
  { name: 'concat hash: delete a missing element', expect: 'ENOENT', build: (t) => t.delete({ kind: 'element', set: 'hx', key: ['10.0.0.10', 'udp', '80'] }) },
  {
    name: 'concat hash: neighbours stay independent elements, delete and re-add in one batch',
    expect: 'ok',
    build: (t) => {
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.10', 'tcp', '81'] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.11', 'tcp', '80'] });
      t.delete({ kind: 'element', set: 'hx', key: ['10.0.0.9', 'udp', '53'] });
      t.add({ kind: 'element', set: 'hx', key: ['10.0.0.9', 'udp', '53'] });
      t.delete({ kind: 'element', set: 'hx6', key: ['fd00::1', 'tcp', '443'] });
    },
  },
  { name: 'set with another type', expect: 'EEXIST', build: (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv6_addr'] }) },
  { name: 'set with other flags', expect: 'EEXIST', build: (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'], flags: ['interval'] }) },
  { name: 'map over a set', expect: 'EEXIST', build: (t) => t.add({ kind: 'map', name: 'h4', type: ['ipv4_addr'] }) },
  { name: 'map element with another value', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: 'drop' }) },
  { name: 'interval overlap: inside', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 's4', key: ['10.0.0.5'] }) },
  { name: 'interval overlap: containing', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/16'] }) },
  { name: 'interval overlap: partial', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 's4', key: ['10.0.0.200-10.0.1.5'] }) },
  {
    name: 'interval overlap within one batch',
    expect: 'EEXIST',
    build: (t) => {
      t.add({ kind: 'element', set: 's4', key: ['10.5.0.0/24'] });
      t.add({ kind: 'element', set: 's4', key: ['10.5.0.0/16'] });
    },
  },
  // libnftables keeps a cache per context: a failed batch must leave nothing in it.
  { name: 'a failed batch leaves no trace', expect: 'ok', build: (t) => t.add({ kind: 'element', set: 's4', key: ['10.5.0.0/16'] }) },
  { name: 'concat overlap: the verified case', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 'cc', key: ['10.0.0.5', 'tcp', '85'] }) },
  { name: 'concat overlap: first point inside', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/16', 'tcp', '80-100'] }) },
  { name: 'concat overlap: last point inside', expect: 'EEXIST', build: (t) => t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '70-85'] }) },
  { name: 'concat: strict superset is accepted', expect: 'ok', build: (t) => t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '70-100'] }) },
  { name: 'concat: other protocol is accepted', expect: 'ok', build: (t) => t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'udp', '80-90'] }) },
  { name: 'concat delete by first point', expect: 'ok', build: (t) => t.delete({ kind: 'element', set: 'c1', key: ['10.0.0.0/24', 'tcp', '80-91'] }) },
  {
    name: 'interval: adjacent, and reuse of freed space in one batch',
    expect: 'ok',
    build: (t) => {
      t.add({ kind: 'element', set: 's4', key: ['10.0.1.0/24'] });
      t.delete({ kind: 'element', set: 's4', key: ['10.2.0.0/24'] });
      t.add({ kind: 'element', set: 's4', key: ['10.2.0.0/16'] });
    },
  },
  {
    name: 'interleaved element operations on several sets',
    expect: 'ok',
    build: (t) => {
      t.add({ kind: 'element', set: 'h4', key: ['10.20.0.1'] });
      t.add({ kind: 'element', set: 's4', key: ['10.20.0.0/24'] });
      t.delete({ kind: 'element', set: 'h4', key: ['10.20.0.1'] });
      t.add({ kind: 'element', set: 's4', key: ['10.21.0.0/24'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.20.0.1'] });
      t.delete({ kind: 'element', set: 's4', key: ['10.20.0.0/24'] });
      t.add({ kind: 'element', set: 's4', key: ['10.20.0.0/16'] });
    },
  },
  {
    name: 'interleaved element operations failing in the middle',
    expect: 'EEXIST',
    build: (t) => {
      t.add({ kind: 'element', set: 'h4', key: ['10.30.0.1'] });
      t.add({ kind: 'element', set: 's4', key: ['10.0.0.5'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.30.0.2'] });
    },
  },
  {
    name: 'a large batch (several commands per set)',
    expect: 'ok',
    build: (t) => {
      for (let i = 0; i < 1200; i++) {
        const ip = `10.${100 + (i >> 8)}.${i & 255}`;
        t.add({ kind: 'element', set: 's4', key: [`${ip}.0/25`] });
        t.add({ kind: 'element', set: 'cc', key: [`${ip}.0/24`, i % 2 === 0 ? 'tcp' : 'udp', `${1000 + (i % 50)}-${2000 + (i % 50)}`] });
        t.add({ kind: 'element', set: 'h4', key: [`${ip}.7`] });
      }
    },
  },
  { name: 'delete part of an interval', expect: 'ENOENT', build: (t) => t.delete({ kind: 'element', set: 's4', key: ['10.0.0.0/25'] }) },
  { name: 'delete missing interval element', expect: 'ENOENT', build: (t) => t.delete({ kind: 'element', set: 's4', key: ['10.77.0.0/16'] }) },
  { name: 'delete missing hash element', expect: 'ENOENT', build: (t) => t.delete({ kind: 'element', set: 'h4', key: ['10.77.0.1'] }) },
  { name: 'delete missing concat element', expect: 'ENOENT', build: (t) => t.delete({ kind: 'element', set: 'cc', key: ['10.77.0.0/24', 'tcp', '80'] }) },
  { name: 'element of a missing set', expect: 'ENOENT', build: (t) => t.add({ kind: 'element', set: 'nope', key: ['10.0.0.1'] }) },
  { name: 'map element to a missing chain', expect: 'ENOENT', build: (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.9'], value: { jump: 'nope' } }) },
  { name: 'map element to a base chain', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.9'], value: { jump: 'input' } }) },
  { name: 'prefix in a hash set', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'h4', key: ['10.1.0.0/24'] }) },
  { name: 'key arity', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'h4', key: ['10.1.0.1', 80] }) },
  { name: 'key of the wrong family', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'h4', key: ['fd00::9'] }) },
  { name: 'value in a set', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'h4', key: ['10.1.0.1'], value: 'accept' }) },
  { name: 'no value in a map', expect: 'EINVAL', build: (t) => t.add({ kind: 'element', set: 'm4', key: ['10.1.0.1'] }) },
  { name: 'rule in a missing chain', expect: 'ENOENT', build: (t) => t.add({ kind: 'rule', chain: 'nope', body: [accept()] }) },
  { name: 'rule with a missing @set', expect: 'ENOENT', build: (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 'nope'), accept()] }) },
  { name: 'rule with a missing vmap', expect: 'ENOENT', build: (t) => t.add({ kind: 'rule', chain: 'a', body: [vmap(['ip saddr'], 'nope')] }) },
  { name: 'rule jumping to a missing chain', expect: 'ENOENT', build: (t) => t.add({ kind: 'rule', chain: 'a', body: [jump('nope')] }) },
  { name: 'rule key type mismatch', expect: 'EINVAL', build: (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip6 saddr'], 'h4'), accept()] }) },
  { name: 'rule jumping to a base chain', expect: 'EINVAL', build: (t) => t.add({ kind: 'rule', chain: 'a', body: [jump('input')] }) },
  { name: 'delete a chain referenced by a jump', expect: 'EBUSY', build: (t) => t.delete({ kind: 'chain', name: 'a' }) },
  { name: 'delete a chain referenced by a map element', expect: 'EBUSY', build: (t) => t.delete({ kind: 'chain', name: 'b' }) },
  { name: 'delete a referenced set', expect: 'EBUSY', build: (t) => t.delete({ kind: 'set', name: 's4' }) },
  { name: 'delete a referenced map', expect: 'EBUSY', build: (t) => t.delete({ kind: 'map', name: 'm4' }) },
  { name: 'delete a missing chain', expect: 'ENOENT', build: (t) => t.delete({ kind: 'chain', name: 'nope' }) },
  { name: 'change a hook', expect: 'EINVAL', build: (t) => t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } }) },
  { name: 'change a priority', expect: 'EINVAL', build: (t) => t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: 10, policy: 'accept' } }) },
  {
    name: 'hook a regular chain, with a policy',
    expect: 'EINVAL',
    build: (t) => t.add({ kind: 'chain', name: 'b', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } }),
  },
  { name: 'change a hook, with a policy', expect: 'EINVAL', build: (t) => t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } }) },
  { name: 'change a policy', expect: 'ok', build: (t) => t.add({ kind: 'chain', name: 'fwd-0', base: { type: 'filter', hook: 'forward', priority: -150, policy: 'drop' } }) },
  {
    name: 'a failing batch applies nothing',
    expect: 'ENOENT',
    build: (t) => {
      t.add({ kind: 'chain', name: 'c' });
      t.add({ kind: 'element', set: 'h4', key: ['10.8.8.8'] });
      t.add({ kind: 'rule', chain: 'c', body: [accept()] });
      t.delete({ kind: 'set', name: 'nope' });
    },
  },
  {
    name: 'a loop reachable from a base chain',
    expect: 'EINVAL',
    build: (t) => {
      t.add({ kind: 'rule', chain: 'a', body: [jump('b')] });
      t.add({ kind: 'rule', chain: 'b', body: [jump('a')] });
    },
  },
  { name: 'an unreachable loop is fine', expect: 'ok', build: (t) => { t.add({ kind: 'chain', name: 'lonely' }); t.add({ kind: 'rule', chain: 'lonely', body: [jump('lonely')] }); } },
  { name: 'a chain referenced by its own rule is busy', expect: 'EBUSY', build: (t) => t.delete({ kind: 'chain', name: 'lonely' }) },
  {
    name: 'a loop through a verdict map',
    expect: 'EINVAL',
    build: (t) => {
      t.add({ kind: 'chain', name: 'c' });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.4'], value: { jump: 'c' } });
      t.add({ kind: 'rule', chain: 'c', body: [vmap(['ip saddr'], 'm4')] });
    },
  },
  {
    name: 'names that are grammar words but not keywords work everywhere',
    expect: 'ok',
    build: (t) => {
      for (const name of ['in', 'out', 'state', 'port', 'vm', 'string', 'a.b', '_x', 'A-1', 'n'.repeat(128)]) {
        t.add({ kind: 'chain', name });
        t.add({ kind: 'set', name: `s-${name}`.slice(0, 128), type: ['ipv4_addr'] });
        t.add({ kind: 'map', name: `m-${name}`.slice(0, 128), type: ['ipv4_addr'] });
        t.add({ kind: 'element', set: `m-${name}`.slice(0, 128), key: ['10.0.0.1'], value: { jump: name } });
        t.add({ kind: 'rule', chain: 'b', body: [matchSet(['ip saddr'], `s-${name}`.slice(0, 128)), counter(), jump(name)] });
        t.add({ kind: 'rule', chain: 'b', body: [vmap(['ip saddr'], `m-${name}`.slice(0, 128))] });
      }
    },
  },
  { name: 'flush a chain', expect: 'ok', build: (t) => t.flush({ kind: 'chain', name: 'b' }) },
  {
    name: 'delete what is no longer referenced',
    expect: 'ok',
    build: (t) => {
      for (const name of ['input', 'fwd-0', 'a', 'b']) t.flush({ kind: 'chain', name });
      t.delete({ kind: 'set', name: 's4' });
      t.delete({ kind: 'map', name: 'mi' });
      t.delete({ kind: 'set', name: 'm4' }); // `delete set` on a map, as nft allows
      t.delete({ kind: 'chain', name: 'a' });
    },
  },
];

describe('FakeNft agrees with the kernel', { skip: isRoot ? false : 'needs root for network namespaces' }, () => {
  let ns = '';
  let kernel: KernelNftBackend | null = null;
  let fake: FakeNft | null = null;

  before(() => {
    ns = addNetns();
    kernel = new KernelNftBackend({ table: T, netns: `/run/netns/${ns}` });
    fake = new FakeNft(T);
  });

  after(() => {
    try {
      kernel?.close();
    } finally {
      if (ns !== '') deleteNetns(ns);
    }
  });

  it('lists a missing table as null on both', async () => {
    assert.equal(await kernel?.list(), null);
    assert.equal(await fake?.list(), null);
  });

  it('runs every step with the same outcome and the same resulting table', async () => {
    const k = kernel;
    const f = fake;
    assert.ok(k !== null && f !== null);
    for (const step of STEPS) {
      const build = async (b: NftBackend): Promise<Transaction> => {
        const t = new Transaction(T);
        step.build(t, await b.list());
        assert.equal(t.error, null, `${step.name}: ${String(t.error)}`);
        return t;
      };
      const kt = await build(k);
      const ft = await build(f);
      const kCheck = await outcome(k.check(kt));
      const fCheck = await outcome(f.check(ft));
      const kRun = await outcome(k.run(kt));
      const fRun = await outcome(f.run(ft));
      const where = `step "${step.name}"\nkernel: ${kRun.message}\nfake: ${fRun.message}\n${kt.toString()}`;
      assert.equal(kRun.code, step.expect, `kernel: ${where}`);
      assert.equal(fRun.code, kRun.code, `fake vs kernel: ${where}`);
      assert.equal(kCheck.code, kRun.code, `kernel check vs run: ${where}`);
      assert.equal(fCheck.code, fRun.code, `fake check vs run: ${where}`);
      assert.deepEqual(viewOf(await f.list()), viewOf(await k.list()), `listing after ${where}`);
    }
  });

  it("replays the fake's dump into a fresh kernel table with the same result", async () => {
    const f = fake;
    assert.ok(f !== null);
    const fresh = addNetns();
    try {
      const ctx = openNftContext(`/run/netns/${fresh}`);
      const k = new KernelNftBackend({ table: T, context: ctx });
      try {
        await ctx.run(f.dump());
        assert.deepEqual(viewOf(await k.list()), viewOf(await f.list()));
      } finally {
        k.close();
      }
    } finally {
      deleteNetns(fresh);
    }
  });

  it('deletes the table on both', async () => {
    const k = kernel;
    const f = fake;
    assert.ok(k !== null && f !== null);
    for (const b of [k, f]) {
      const t = new Transaction(T);
      t.delete({ kind: 'table' });
      await b.run(t);
      assert.equal(await b.list(), null);
    }
  });
});
