// The netns sandbox, for real: needs root, iproute2, nftables and busybox. Run with
//   node --test --test-concurrency=1 build/test/netns/sandbox.test.js
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox, SandboxError, type ProbeOutcome, type ProbeRequest, type ProbeResult, type SandboxPodSpec, type Topology } from '../../src/sandbox';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;
const PREFIX = 'sbxtest';
const OK_MS = 3000;
const DROP_MS = 600;

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

function netnsPids(netns: string): number[] {
  return execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split(/\s+/).filter((x) => x !== '').map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms = 3000): Promise<number[]> {
  const end = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter(alive);
  }
  return left;
}

function describeResult(r: ProbeResult): string {
  return `${r.req.from} -> ${r.req.protocol} ${r.req.toIp}:${r.req.port}: ${r.outcome} (${r.detail})`;
}

async function expectAll(sb: Sandbox, reqs: ProbeRequest[], outcome: ProbeOutcome, detail?: RegExp): Promise<ProbeResult[]> {
  const res = await sb.probe(reqs);
  const wrong = res.filter((r) => r.outcome !== outcome || (detail !== undefined && !detail.test(r.detail)));
  assert.deepEqual(wrong.map(describeResult), [], `expected ${outcome}${detail === undefined ? '' : ` matching ${detail}`}`);
  return res;
}

function req(from: string, toIp: string, port: number, protocol: ProbeRequest['protocol'], timeoutMs = OK_MS): ProbeRequest {
  return { from, toIp, port, protocol, timeoutMs };
}

function nft(netns: string, script: string): void {
  execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: script });
}

function podMac(sb: Sandbox, pod: string): string {
  const out = JSON.parse(execFileSync('ip', ['-n', sb.podNetnsName(pod), '-j', 'link', 'show', 'eth0'], { encoding: 'utf8' })) as { address: string }[];
  return out[0]?.address ?? '';
}

function neighMac(sb: Sandbox, pod: string, ip: string): string {
  const out = JSON.parse(execFileSync('ip', ['-n', sb.podNetnsName(pod), '-j', 'neigh', 'show', ip, 'dev', 'eth0'], { encoding: 'utf8' })) as { lladdr?: string }[];
  return out[0]?.lladdr ?? '';
}

const TCP = 8080;
const UDP = 5353;
const SCTP = 9999;
const PORTS: SandboxPodSpec['ports'] = [
  { port: TCP, protocol: 'TCP' },
  { port: UDP, protocol: 'UDP' },
  { port: SCTP, protocol: 'SCTP' },
];

interface Ips {
  client: string[];
  server: string[];
  remote: string[];
}

function ipsFor(dual: boolean): Ips {
  const v6 = (n: number): string[] => (dual ? [`fd00:10::${n}`] : []);
  return { client: ['10.10.1.2', ...v6(2)], server: ['10.10.1.3', ...v6(3)], remote: ['10.10.2.2', ...v6(0x202)] };
}

for (const topology of ['routed', 'bridged'] as Topology[]) {
  for (const dual of [false, true]) {
    describe(`sandbox ${topology} ${dual ? 'dual-stack' : 'IPv4'}`, { skip: SKIP }, () => {
      const ips = ipsFor(dual);
      let sb: Sandbox;
      let pids: number[] = [];

      before(async () => {
        sb = await Sandbox.create({
          prefix: PREFIX,
          topology,
          nodes: ['n1', 'n2'],
          pods: [
            { key: 'team-a/client', node: 'n1', ips: ips.client, ports: [] },
            { key: 'team-a/server', node: 'n1', ips: ips.server, ports: PORTS },
            { key: 'team-b/remote', node: 'n2', ips: ips.remote, ports: PORTS },
          ],
        });
        pids = sb.processIds();
      });

      after(async () => {
        await sb.destroy();
      });

      test('pod to pod on the same node connects on TCP and UDP', async () => {
        const reqs = ips.server.flatMap((ip) => [req('team-a/client', ip, TCP, 'TCP'), req('team-a/client', ip, UDP, 'UDP')]);
        const res = await expectAll(sb, reqs, 'connected');
        assert.match(res[0]?.detail ?? '', /answered by pod team-a\/server on TCP port 8080/);
      });

      test('pod to pod across nodes connects on TCP and UDP, both ways', async () => {
        await expectAll(sb, [
          ...ips.remote.flatMap((ip) => [req('team-a/client', ip, TCP, 'TCP'), req('team-a/client', ip, UDP, 'UDP')]),
          ...ips.server.flatMap((ip) => [req('team-b/remote', ip, TCP, 'TCP'), req('team-b/remote', ip, UDP, 'UDP')]),
        ], 'connected');
      });

      test('nodes reach local and remote pods', async () => {
        await expectAll(sb, [...ips.server, ...ips.remote].flatMap((ip) => [req('node:n1', ip, TCP, 'TCP'), req('node:n2', ip, UDP, 'UDP')]), 'connected');
      });

      test('ICMP echo works between pods on one node, across nodes, and from a node (busybox ping)', async () => {
        for (const [from, ip] of [...ips.server, ...ips.remote].flatMap((ip): [string, string][] => [['team-a/client', ip], ['node:n2', ip]])) {
          const got = await sb.exec(from, ['busybox', 'ping', '-c', '1', '-W', '2', ip], 5000);
          assert.equal(got.code, 0, `ping ${ip} from ${from}: ${got.stdout}${got.stderr}`);
        }
      });

      test('an unserved port is refused on TCP and UDP', async () => {
        await expectAll(sb, [...ips.server, ...ips.remote].map((ip) => req('team-a/client', ip, TCP + 1, 'TCP')), 'refused');
        // One UDP probe per destination: ICMP errors are rate-limited per peer.
        await expectAll(sb, [...ips.server, ...ips.remote].map((ip) => req('team-a/client', ip, UDP + 1, 'UDP')), 'refused');
      });

      test('SCTP is skipped with the reason', async () => {
        await expectAll(sb, [req('team-a/client', ips.server[0] ?? '', SCTP, 'SCTP')], 'skipped', /SCTP/);
        assert.ok(sb.unservedPorts('team-a/server').some((p) => p.protocol === 'SCTP' && /SCTP/.test(p.reason)));
      });

      test("a drop rule in the node's inet forward hook makes same-node and cross-node probes time out", async () => {
        const table = `sbx_test_${process.pid}`;
        const drops = [...ips.server, ...ips.remote].map((ip) => `    ${ip.includes(':') ? 'ip6' : 'ip'} daddr ${ip} counter drop`).join('\n');
        const probes = [...ips.server, ...ips.remote].flatMap((ip) => [req('team-a/client', ip, TCP, 'TCP', DROP_MS), req('team-a/client', ip, UDP, 'UDP', DROP_MS)]);
        nft(sb.nodeNetnsName('n1'), `table inet ${table} {\n  chain sbx_forward {\n    type filter hook forward priority 0; policy accept;\n${drops}\n  }\n}\n`);
        try {
          await expectAll(sb, probes, 'timeout');
        } finally {
          nft(sb.nodeNetnsName('n1'), `delete table inet ${table}\n`);
        }
        await expectAll(sb, probes.map((p) => ({ ...p, timeoutMs: OK_MS })), 'connected');
      });

      if (topology === 'bridged') {
        test('same-node traffic is bridged: the client resolved the server to its own MAC, not the node', async () => {
          await expectAll(sb, ips.server.map((ip) => req('team-a/client', ip, TCP, 'TCP')), 'connected');
          const mac = podMac(sb, 'team-a/server');
          for (const ip of ips.server) assert.equal(neighMac(sb, 'team-a/client', ip), mac, `neighbour entry for ${ip}`);
          await expectAll(sb, ips.remote.map((ip) => req('team-a/client', ip, TCP, 'TCP')), 'connected');
          for (const ip of ips.remote) assert.notEqual(neighMac(sb, 'team-a/client', ip), podMac(sb, 'team-b/remote'));
        });
      }

      test('exec runs busybox wget inside a pod, reports exit codes and kills at the timeout', async () => {
        const url = `http://${ips.remote[0] ?? ''}:${TCP}/`;
        const got = await sb.exec('team-a/client', ['busybox', 'wget', '-q', '-O', '-', url], 5000);
        assert.equal(got.code, 0, got.stderr);
        assert.match(got.stdout, /netpol-sandbox pod=team-b\/remote port=8080/);
        assert.equal((await sb.exec('team-a/client', ['sh', '-c', 'exit 3'], 5000)).code, 3);
        const ipOut = await sb.exec('team-a/server', ['ip', '-o', 'addr', 'show', 'dev', 'eth0'], 5000);
        for (const ip of ips.server) assert.ok(ipOut.stdout.includes(ip), ipOut.stdout);
        const slow = await sb.exec('node:n1', ['sh', '-c', 'sleep 30 | cat'], 300);
        assert.equal(slow.code, null);
        const inside = netnsPids(sb.nodeNetnsName('n1'));
        assert.deepEqual(inside.filter((pid) => !sb.processIds().includes(pid)), [], 'the timed-out pipeline left processes behind');
      });

      test('removePod and addPod: churn and IP reuse on the same node and on another node', async () => {
        const reached = async (pod: string, sameNode: boolean): Promise<void> => {
          await expectAll(sb, ips.server.flatMap((ip) => [req('team-a/client', ip, TCP, 'TCP'), req('team-b/remote', ip, TCP, 'TCP')]), 'connected', new RegExp(`answered by pod ${pod}`));
          await expectAll(sb, ips.server.map((ip) => req('team-a/client', ip, UDP, 'UDP')), 'connected');
          if (topology === 'bridged') {
            // Same node: bridged straight to the new pod's MAC (no stale entry for the old pod's MAC).
            // Other node: the node answers for it.
            for (const ip of ips.server) {
              const mac = neighMac(sb, 'team-a/client', ip);
              if (sameNode) assert.equal(mac, podMac(sb, pod), `client's neighbour entry for ${ip}`);
              else assert.notEqual(mac, podMac(sb, pod), `client's neighbour entry for ${ip}`);
            }
          }
        };
        await expectAll(sb, ips.server.map((ip) => req('team-a/client', ip, TCP, 'TCP')), 'connected'); // warm the caches
        await sb.removePod('team-a/server');
        assert.ok(!sb.podKeys().includes('team-a/server'));
        const gone = await sb.probe(ips.server.map((ip) => req('team-a/client', ip, TCP, 'TCP', DROP_MS)));
        for (const r of gone) assert.notEqual(r.outcome, 'connected', describeResult(r));

        // The same addresses on the same node, under another pod; then on the other node; then back.
        await sb.addPod({ key: 'team-c/again', node: 'n1', ips: ips.server, ports: PORTS });
        await reached('team-c/again', true);
        await sb.removePod('team-c/again');
        await sb.addPod({ key: 'team-c/mover', node: 'n2', ips: ips.server, ports: PORTS });
        await reached('team-c/mover', false);
        await sb.removePod('team-c/mover');
        await sb.addPod({ key: 'team-c/back', node: 'n1', ips: ips.server, ports: PORTS });
        await reached('team-c/back', true);

        await assert.rejects(sb.addPod({ key: 'team-d/dup', node: 'n2', ips: [ips.server[0] ?? ''], ports: [] }), /team-c\/back/);
        await assert.rejects(sb.addPod({ key: 'team-d/nowhere', node: 'n9', ips: ['10.10.9.9'], ports: [] }), /node "n9"/);
        await assert.rejects(sb.removePod('team-d/none'), /team-d\/none/);
        assert.ok(!netnsList().some((n) => n.includes('team-d')), 'a rejected addPod left a namespace');
      });

      test('destroy removes every namespace and process, and can be called again', async () => {
        // A daemon started by exec escapes our process tree; destroy must still find and kill it.
        // (It keeps exec's stdout open: exec must still return once the shell has exited.) The bound is half
        // the daemon's life: an exec that waited for the daemon's stdout to close times out (code null),
        // whatever the machine's load; one that returns at the shell's exit has code 0.
        const daemon = await sb.exec('team-a/client', ['sh', '-c', 'setsid sleep 60 &'], 30_000);
        assert.equal(daemon.code, 0, `exec returned at the shell's exit, not at its timeout: ${daemon.stderr}`);
        const strays = netnsPids(sb.podNetnsName('team-a/client')).filter((pid) => !sb.processIds().includes(pid));
        assert.equal(strays.length, 1, 'the daemon should be running in the pod');
        const all = [...pids, ...sb.processIds(), ...strays];
        assert.ok(netnsList().some((n) => n.startsWith(`${sb.name}-`)));
        await sb.destroy();
        assert.deepEqual(netnsList().filter((n) => n.startsWith(`${sb.name}-`)), []);
        assert.deepEqual(await waitGone(all), []);
        await sb.destroy();
        await assert.rejects(sb.probe([req('team-a/client', '10.10.1.3', TCP, 'TCP')]), SandboxError);
      });
    });
  }
}

describe('sandbox input checks', { skip: SKIP }, () => {
  const base = { prefix: PREFIX, topology: 'routed' as Topology, nodes: ['n1'] };
  test('rejects pod addresses in the fabric, duplicates, unknown nodes and bad prefixes, creating nothing', async () => {
    const before = netnsList().length;
    await assert.rejects(Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n1', ips: ['169.254.100.7'], ports: [] }] }), /pod a\/x: address 169\.254\.100\.7/);
    await assert.rejects(Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n1', ips: ['fd00:fab::9'], ports: [] }] }), /pod a\/x/);
    await assert.rejects(
      Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n1', ips: ['10.0.0.1'], ports: [] }, { key: 'a/y', node: 'n1', ips: ['10.0.0.1'], ports: [] }] }),
      /a\/y has address 10\.0\.0\.1, which pod a\/x already has/,
    );
    await assert.rejects(Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n2', ips: ['10.0.0.1'], ports: [] }] }), /pod a\/x is on node "n2"/);
    await assert.rejects(Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n1', ips: [], ports: [] }] }), /pod a\/x has no IP addresses/);
    await assert.rejects(Sandbox.create({ ...base, prefix: 'bad/prefix', pods: [] }), /prefix/);
    assert.equal(netnsList().length, before);
  });

  test('probes that cannot run come back as errors naming the source', async () => {
    const sb = await Sandbox.create({ ...base, pods: [{ key: 'a/x', node: 'n1', ips: ['10.0.0.1'], ports: [] }] });
    try {
      const res = await sb.probe([req('a/nope', '10.0.0.1', 80, 'TCP'), req('node:n7', '10.0.0.1', 80, 'TCP'), req('a/x', 'not-an-ip', 80, 'TCP')]);
      assert.deepEqual(res.map((r) => r.outcome), ['error', 'error', 'error']);
      assert.match(res[0]?.detail ?? '', /a\/nope/);
      assert.match(res[1]?.detail ?? '', /n7/);
    } finally {
      await sb.destroy();
    }
  });
});

describe('sandbox teardown when the process ends without destroy()', { skip: SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-test-'));
  const script = join(dir, 'child.js');
  after(() => rmSync(dir, { recursive: true, force: true }));
  before(() => {
    writeFileSync(
      script,
      `const { Sandbox } = require(${JSON.stringify(join(__dirname, '../../src/sandbox'))});
Sandbox.create({ prefix: ${JSON.stringify(PREFIX)}, topology: 'bridged', nodes: ['n1', 'n2'], pods: [
  { key: 'a/x', node: 'n1', ips: ['10.0.0.1', 'fd00::1'], ports: [{ port: 80, protocol: 'TCP' }] },
  { key: 'a/y', node: 'n2', ips: ['10.0.0.2'], ports: [] },
] }).then((sb) => {
  process.stdout.write(JSON.stringify({ name: sb.name, pids: sb.processIds() }) + '\\n');
  if (process.argv[2] === 'exit') process.exit(0);
  if (process.argv[2] === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
  if (process.argv[2] === 'natural') return; // nothing left to do: the process must end by itself
  setInterval(() => undefined, 1000);
});
`,
    );
  });

  for (const how of ['SIGTERM', 'SIGINT', 'exit', 'throw', 'natural'] as const) {
    test(`${how}: no namespace and no helper survives`, async () => {
      const child = spawn(process.execPath, [script, how], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const info = await new Promise<{ name: string; pids: number[] }>((resolve, reject) => {
        child.stdout.on('data', () => {
          const line = out.split('\n')[0];
          if (out.includes('\n') && line !== undefined) resolve(JSON.parse(line) as { name: string; pids: number[] });
        });
        child.on('close', () => (out.includes('\n') ? undefined : reject(new Error(`child exited before creating its sandbox: ${out}`))));
      });
      assert.equal(info.pids.length, 4);
      const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      if (how === 'SIGTERM' || how === 'SIGINT') child.kill(how);
      const end = await closed;
      if (how === 'SIGTERM' || how === 'SIGINT') assert.equal(end.signal, how, 'the signal keeps its usual meaning');
      assert.deepEqual(netnsList().filter((n) => n.startsWith(`${info.name}-`)), []);
      assert.deepEqual(await waitGone(info.pids), []);
    });
  }
});

describe('sandbox scale', { skip: SKIP }, () => {
  for (const [podCount, nodeCount, topology] of [
    [9, 2, 'routed'],
    [9, 2, 'bridged'],
    [100, 5, 'routed'],
    [100, 5, 'bridged'],
  ] as const) {
    test(`${podCount} dual-stack pods on ${nodeCount} nodes (${topology}): creation time, every pod reachable`, async (t) => {
      const nodes = Array.from({ length: nodeCount }, (_, i) => `node-${i}`);
      const pods: SandboxPodSpec[] = Array.from({ length: podCount }, (_, i) => ({
        key: `ns-${i % 4}/pod-${i}`,
        node: nodes[i % nodeCount] ?? '',
        ips: [`10.20.${i >> 8}.${(i & 255) + 1}`, `fd00:20::${(i + 1).toString(16)}`],
        ports: [{ port: 80, protocol: 'TCP' }],
      }));
      const t0 = process.hrtime.bigint();
      const sb = await Sandbox.create({ prefix: PREFIX, topology, nodes, pods });
      const createMs = Number(process.hrtime.bigint() - t0) / 1e6;
      try {
        // Every pod probes the next one, over each family.
        const reqs = pods.flatMap((p, i) => (pods[(i + 1) % podCount]?.ips ?? []).map((ip) => req(p.key, ip, 80, 'TCP', 5000)));
        const t1 = process.hrtime.bigint();
        await expectAll(sb, reqs, 'connected');
        const probeMs = Number(process.hrtime.bigint() - t1) / 1e6;
        t.diagnostic(`${podCount} pods / ${nodeCount} nodes ${topology}: create ${createMs.toFixed(0)} ms, ${reqs.length} probes ${probeMs.toFixed(0)} ms`);
      } finally {
        const t2 = process.hrtime.bigint();
        await sb.destroy();
        t.diagnostic(`destroy ${(Number(process.hrtime.bigint() - t2) / 1e6).toFixed(0)} ms`);
      }
      assert.deepEqual(netnsList().filter((n) => n.startsWith(`${sb.name}-`)), []);
    });
  }
});
