// Debug reads against enforcement: the latency of a local pod's change (datastore write -> kernel commit)
// at 20,000 pods with the agent idle, with 50 clients reading /rules (or /rules?pod=) back to back, and
// with 2,000 idle connections open; the agent's peak RSS in each against the DaemonSet's 1 GiB limit; the longest
// /healthz answer meanwhile. Then a datastore file built to block the event loop (1.5 M keys, 20 MiB of
// YAML) and the largest YAML file the datastore reads: does /healthz answer throughout, how long does
// SIGTERM take. Needs root (network namespaces); prints figures, asserts nothing.
//
//   node --expose-gc build/bench/debug-reads.js [latency] [big-file]   (both when none is named)
//     BENCH_ROUNDS=3 BENCH_SAMPLES=10   rounds per load, local pod changes per round
//     BENCH_RULES_TARGET=HOST:PORT|/path/to.sock   where /rules is read (default: the agent's debug
//       socket); a path is a unix socket, read with http.request's socketPath
//
// The agent runs in a child process (its RSS is its own); a commit reaches this process over IPC with
// its time on the shared clock (performance.timeOrigin + now). The big-file run starts the real command
// line (`netpol-agent run`) inside a network namespace, and a /healthz prober beside it.
import { execFileSync, fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pino from 'pino';
import { startAgent } from '../src/agent';
import { KernelNftBackend } from '../src/dataplane/nft';
import { MAX_YAML_BYTES } from '../src/source/manifests';
import { SampleObjects, list, writeDatastore } from './agent-latency';
import { namespaceJson, podJson } from './manifests';
import { fmtMs, mib, percentile, printTable } from './report';
import type { SyntheticOptions } from './synthetic-cluster';

const SCALE: SyntheticOptions = { seed: 42, pods: 20_000, nodes: 100, namespaces: 400, policies: 2_000 };
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 10);
const RULES_CLIENTS = 50;
const IDLE_CONNECTIONS = 2_000;
const DAEMONSET_LIMIT = 1024 * 1024 * 1024;
const COMMIT_TIMEOUT_MS = 600_000;
/** As kubelet probes by default: a probe that takes longer than 1 s failed. */
const PROBE_TIMEOUT_MS = 1_000;
const PROBE_PERIOD_MS = 100;
const CHANGE_FILE = 'zz-change.json';
const AGENT_CHILD = '--agent-child';
const HEALTH_PROBER = '--health-prober';
const CLI = resolve(__dirname, '../../bin/netpol-agent');

/** Where an HTTP request goes: a TCP address, or a unix socket (the agent's debug socket). */
export type HttpTarget = { readonly host: string; readonly port: number } | { readonly socketPath: string };

export function parseTarget(text: string): HttpTarget {
  if (text.startsWith('/')) return { socketPath: text };
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(text.slice(at + 1)) };
}

/** GET `path`; resolves with the status and the body's length (the body itself is dropped as it comes). */
function get(target: HttpTarget, path: string, timeoutMs = 0): Promise<{ status: number; bytes: number }> {
  return new Promise((done, fail) => {
    const req = request({ ...target, path, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => done({ status: res.statusCode ?? 0, bytes }));
      res.on('error', fail);
    });
    if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end();
  });
}

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- the agent child ----------------------------------------------------------------------------

type ChildMessage = { readonly kind: 'listening'; readonly port: number } | { readonly kind: 'commit'; readonly full: boolean; readonly at: number };

/** The agent's debug socket: beside the datastore folder, in a folder of its own. */
function debugSocketOf(datastore: string): string {
  return `${datastore}-debug/debug.sock`;
}

async function agentChild(dir: string, netns: string, node: string, table: string): Promise<void> {
  const backend = new KernelNftBackend({ table, netns: `/run/netns/${netns}` });
  const send = (m: ChildMessage): void => void process.send?.(m);
  const agent = await startAgent({
    node, table, metricsListen: '127.0.0.1:0', debugSocket: debugSocketOf(dir), datastoreFile: dir, resyncPeriodMs: 0, backend, dropLog: null,
    logger: pino({ level: 'warn' }),
    onCommitted: (c) => {
      if (c.events.length > 0) send({ kind: 'commit', full: c.report.kind === 'full', at: performance.timeOrigin + c.committedAt });
    },
  });
  send({ kind: 'listening', port: agent.address.port });
  process.on('message', () => {
    void agent.stop().then(() => process.exit(0));
  });
}

// --- the agent's memory -------------------------------------------------------------------------

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) * 1024;
}

/** Starts the peak RSS (VmHWM) over from the current RSS. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

// --- loads --------------------------------------------------------------------------------------

interface Load {
  readonly name: string;
  /** Starts the load; `pod` is a local pod of the node. Resolves with its stop, which says what it did. */
  start(rules: HttpTarget, agent: HttpTarget, pod: string): Promise<() => Promise<string>>;
}

/** RULES_CLIENTS clients, each reading `path` again as soon as its last reply ended. */
function readers(rules: HttpTarget, path: string): () => Promise<string> {
  let stopped = false;
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  const loops = Array.from({ length: RULES_CLIENTS }, async () => {
    while (!stopped) {
      try {
        const r = await get(rules, path);
        requests++;
        bytes = r.bytes;
      } catch {
        errors++;
        await sleep(100);
      }
    }
  });
  return async () => {
    stopped = true;
    await Promise.all(loops);
    return `${requests} replies of ${(bytes / 1024).toFixed(1)} KiB${errors > 0 ? `, ${errors} failed` : ''}`;
  };
}

const LOADS: readonly Load[] = [
  { name: 'idle', start: () => Promise.resolve(() => Promise.resolve('')) },
  { name: `${RULES_CLIENTS} concurrent /rules clients`, start: (rules) => Promise.resolve(readers(rules, '/rules')) },
  { name: `${RULES_CLIENTS} concurrent /rules?pod= clients`, start: (rules, _agent, pod) => Promise.resolve(readers(rules, `/rules?pod=${encodeURIComponent(pod)}`)) },
  {
    name: `${IDLE_CONNECTIONS} idle connections`,
    start: async (_rules, agent) => {
      const sockets: Socket[] = [];
      let closedByAgent = 0;
      await Promise.all(Array.from({ length: IDLE_CONNECTIONS }, () => new Promise<void>((opened) => {
        const s = 'socketPath' in agent ? connect(agent.socketPath) : connect(agent.port, agent.host);
        s.on('connect', () => opened());
        s.on('error', () => opened());
        s.on('close', () => closedByAgent++);
        sockets.push(s);
      })));
      return () => {
        const closed = closedByAgent;
        for (const s of sockets) s.destroy();
        return Promise.resolve(`${IDLE_CONNECTIONS - closed} still open at the end (${closed} closed by the agent)`);
      };
    },
  },
];

/** /healthz every PROBE_PERIOD_MS, as kubelet would (1 s timeout): the longest answer and the failures. */
function healthProbe(target: HttpTarget): { stop(): { maxMs: number; failed: number; probes: number } } {
  let stopped = false;
  let maxMs = 0;
  let failed = 0;
  let probes = 0;
  void (async () => {
    while (!stopped) {
      const t0 = performance.now();
      try {
        await get(target, '/healthz', PROBE_TIMEOUT_MS);
      } catch {
        failed++;
      }
      probes++;
      maxMs = Math.max(maxMs, performance.now() - t0);
      await sleep(PROBE_PERIOD_MS);
    }
  })();
  return { stop: () => ((stopped = true), { maxMs, failed, probes }) };
}

// --- the latency run ----------------------------------------------------------------------------

interface LoadResult {
  readonly name: string;
  /** Per round: p50 and p99 of its samples. */
  readonly rounds: { p50: number; p99: number }[];
  readonly peakRss: number;
  readonly health: { maxMs: number; failed: number; probes: number };
  readonly note: string;
}

async function runLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'debug-reads-bench-'));
  const netns = `dbgreads-${process.pid}`;
  const table = `netpol_dbg_${process.pid}`;
  const store = writeDatastore(SCALE, dir);
  const objects = new SampleObjects(SCALE);
  const namespace = store.localTemplate?.namespace ?? 'default';
  const base = [namespaceJson(store.toggled)];
  const writeChange = (items: object[]): void => {
    const file = join(dir, CHANGE_FILE);
    writeFileSync(`${file}.tmp`, list(items));
    renameSync(`${file}.tmp`, file);
  };
  writeChange(base);
  execFileSync('ip', ['netns', 'add', netns]);
  let child: ChildProcess | null = null;
  try {
    const started = performance.now();
    child = fork(__filename, [AGENT_CHILD, dir, netns, store.node, table], { execArgv: ['--expose-gc'] });
    const agentProcess = child;
    const waiting = new Set<(m: ChildMessage) => void>();
    agentProcess.on('message', (m: ChildMessage) => {
      for (const w of [...waiting]) w(m);
    });
    /** The next message from the agent that `want` accepts. */
    const next = (want: (m: ChildMessage) => boolean): Promise<ChildMessage> => new Promise((resolveMessage, reject) => {
      const timer = setTimeout(() => reject(new Error(`no commit within ${COMMIT_TIMEOUT_MS} ms`)), COMMIT_TIMEOUT_MS);
      const w = (m: ChildMessage): void => {
        if (!want(m)) return;
        clearTimeout(timer);
        waiting.delete(w);
        resolveMessage(m);
      };
      waiting.add(w);
    });
    const listening = next((m) => m.kind === 'listening');
    const firstSync = next((m) => m.kind === 'commit' && m.full);
    const announced = await listening;
    const port = announced.kind === 'listening' ? announced.port : 0;
    await firstSync;
    const pid = agentProcess.pid ?? 0;
    const agentTarget: HttpTarget = { host: '127.0.0.1', port };
    const rulesTarget = parseTarget(process.env['BENCH_RULES_TARGET'] ?? debugSocketOf(dir));
    console.log(`${SCALE.pods} pods, ${SCALE.namespaces} namespaces, ${SCALE.policies} policies; node ${store.node} with ${store.counts.local} local pods`);
    console.log(`agent synced in ${((performance.now() - started) / 1000).toFixed(1)} s; RSS ${mib(statusField(pid, 'VmRSS'))} MiB; /rules read at ${'socketPath' in rulesTarget ? rulesTarget.socketPath : `${rulesTarget.host}:${rulesTarget.port}`}`);
    console.log(`${ROUNDS} rounds of ${SAMPLES} local pods added then deleted (${2 * SAMPLES} commits per round) per load\n`);

    /** A change written to the datastore -> the commit that carries it, in ms. */
    const timeCommit = async (items: object[]): Promise<number> => {
      await sleep(30); // a lone change, not part of the previous one's burst
      const committed = next((m) => m.kind === 'commit' && !m.full);
      const t0 = now();
      writeChange(items);
      const c = await committed;
      return c.kind === 'commit' ? c.at - t0 : NaN;
    };
    const results: LoadResult[] = [];
    for (const load of LOADS) {
      resetPeak(pid);
      const stop = await load.start(rulesTarget, agentTarget, `${namespace}/${store.localTemplate?.name ?? ''}`);
      const health = healthProbe(agentTarget);
      const rounds: { p50: number; p99: number }[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const samples: number[] = [];
        for (let i = 0; i < SAMPLES; i++) {
          const pod = objects.pod(namespace, store.node);
          samples.push(await timeCommit([...base, podJson(pod)]));
          samples.push(await timeCommit(base));
        }
        rounds.push({ p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) });
      }
      const probed = health.stop();
      const note = await stop();
      results.push({ name: load.name, rounds, peakRss: statusField(pid, 'VmHWM'), health: probed, note });
    }
    const spread = (xs: readonly number[]): string => `${fmtMs(percentile(xs, 0.5))} (${fmtMs(Math.min(...xs))}-${fmtMs(Math.max(...xs))})`;
    const idleP99 = percentile(results[0]?.rounds.map((r) => r.p99) ?? [], 0.5);
    printTable(
      ['load', 'p50: median of rounds (min-max)', 'p99: median of rounds (min-max)', 'p99 / idle', 'peak RSS', 'of 1 GiB', '/healthz max (failed/probes)'],
      results.map((x) => {
        const p99 = percentile(x.rounds.map((r) => r.p99), 0.5);
        return [
          x.name, spread(x.rounds.map((r) => r.p50)), spread(x.rounds.map((r) => r.p99)), `${(p99 / idleP99).toFixed(2)}x`,
          `${mib(x.peakRss)} MiB`, `${((100 * x.peakRss) / DAEMONSET_LIMIT).toFixed(0)}%`, `${fmtMs(x.health.maxMs)} (${x.health.failed}/${x.health.probes})`,
        ];
      }),
    );
    for (const x of results) if (x.note !== '') console.log(`${x.name}: ${x.note}`);
    console.log('goal: p99 within 2x of idle, peak RSS under the 1 GiB limit\n');
  } finally {
    if (child !== null && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.send('stop');
      await Promise.race([exited, sleep(10_000)]);
      child.kill('SIGKILL');
    }
    execFileSync('ip', ['netns', 'del', netns]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(dirname(debugSocketOf(dir)), { recursive: true, force: true });
  }
}

// --- the big-file run ---------------------------------------------------------------------------

/** A YAML mapping of one-word keys, `bytes` long at least: the yaml library's worst case per byte. */
function manyKeys(bytes: number): string {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const line = `k${i}: v`;
    lines.push(line);
    length += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

interface ProbeLine {
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
}

/** In the agent's network namespace: GET /healthz every PROBE_PERIOD_MS, one JSON line per answer. */
async function healthProber(target: string): Promise<void> {
  const t = parseTarget(target);
  for (;;) {
    const t0 = performance.now();
    const ok = await get(t, '/healthz', PROBE_TIMEOUT_MS).then((r) => r.status === 200, () => false);
    process.stdout.write(`${JSON.stringify({ at: now(), ms: performance.now() - t0, ok } satisfies ProbeLine)}\n`);
    await sleep(PROBE_PERIOD_MS);
  }
}

async function runBigFile(): Promise<void> {
  const cases = [
    { name: '20 MiB of YAML, 1.5 M keys', text: manyKeys(20 * 1024 * 1024) },
    { name: `the largest YAML file read (${MAX_YAML_BYTES / 1024 / 1024} MiB of one-word keys)`, text: manyKeys(MAX_YAML_BYTES - 16) },
  ];
  const rows: string[][] = [];
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'big-file-bench-'));
    const netns = `dbgbig-${process.pid}`;
    writeFileSync(join(dir, 'cluster.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n');
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const listen = '127.0.0.1:19977';
    const agent = spawn('ip', ['netns', 'exec', netns, process.execPath, CLI, 'run', '--node-name', 'node-1', '--datastore-file', dir, '--metrics-listen', listen, '--debug-socket', debugSocketOf(dir), '--table', `netpol_big_${process.pid}`, '--no-drop-log', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const prober = spawn('ip', ['netns', 'exec', netns, process.execPath, __filename, HEALTH_PROBER, listen], { stdio: ['ignore', 'pipe', 'inherit'] });
    const probes: ProbeLine[] = [];
    let partial = '';
    prober.stdout.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) probes.push(JSON.parse(l) as ProbeLine);
    });
    try {
      while (!probes.some((p) => p.ok)) await sleep(100);
      const t0 = now();
      writeFileSync(join(dir, 'big.yaml'), c.text);
      await sleep(10_000);
      const after = probes.filter((p) => p.at >= t0);
      const failed = after.filter((p) => !p.ok).length;
      const maxMs = Math.max(...after.map((p) => p.ms));
      const signalled = performance.now();
      const exited = new Promise<number>((r) => agent.once('exit', () => r(performance.now() - signalled)));
      agent.kill('SIGTERM');
      const exitMs = await Promise.race([exited, sleep(15_000).then(() => NaN)]);
      rows.push([c.name, `${(Buffer.byteLength(c.text) / 1024 / 1024).toFixed(1)} MiB`, `${after.length - failed}/${after.length}`, fmtMs(maxMs), Number.isNaN(exitMs) ? 'no exit within 15 s (killed)' : fmtMs(exitMs)]);
    } finally {
      prober.kill('SIGKILL');
      if (agent.exitCode === null) agent.kill('SIGKILL');
      await sleep(200);
      execFileSync('ip', ['netns', 'del', netns]);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  printTable(['datastore file written', 'size', '/healthz answered in 1 s (10 s after the write)', 'longest /healthz', 'SIGTERM -> exit'], rows);
  console.log('goal: /healthz answers throughout, SIGTERM exits within 2 s\n');
}

export async function runDebugReadsBenchmark(parts: readonly string[] = ['latency', 'big-file']): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('debug reads: skipped (needs root for network namespaces and nftables)');
    return;
  }
  if (parts.includes('latency')) await runLatency();
  if (parts.includes('big-file')) await runBigFile();
}

if (require.main === module && process.argv[2] === AGENT_CHILD) {
  const [dir, netns, node, table] = process.argv.slice(3) as [string, string, string, string];
  agentChild(dir, netns, node, table).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (require.main === module && process.argv[2] === HEALTH_PROBER) {
  void healthProber(process.argv[3] ?? '');
} else if (require.main === module) {
  runDebugReadsBenchmark(process.argv.slice(2).length > 0 ? process.argv.slice(2) : undefined).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
