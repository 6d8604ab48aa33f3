// `netpol-agent run --kubeconfig` end to end: the agent process and a local API server that speaks the
// Kubernetes list/watch protocol (test/support/fake-apiserver.ts) both run inside a throwaway network
// namespace, talking over its loopback; the agent programs that namespace's nftables through the addon.
// Checks readiness after the first lists, /rules after a policy written through the API, a 403 in the
// log and in /readyz, the table holding the pods' addresses, an unreachable API server leaving the
// table enforcing, and SIGTERM leaving it in place. Needs root.
//   node --test build/test/netns/agent-kubernetes.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { DEBUG_PATHS, getOverSocket } from '../../src/agent';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const FAKE_APISERVER = join(__dirname, '..', 'support', 'fake-apiserver.js');
const NETNS = `npk-${process.pid}`;
const TABLE = `agent_k8s_${process.pid}`;
const LISTEN = '127.0.0.1:9977';
const DEBUG_SOCKET = join(tmpdir(), `netpol-agent-k8s-test-${process.pid}`, 'debug.sock');
const SERVER_IP = '10.62.1.10';
const CLIENT_IP = '10.62.2.11';
const FORBIDDEN = 'networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:netpol-agent:netpol-agent" cannot list resource "networkpolicies" in API group "networking.k8s.io" at the cluster scope';

/**
 * The fake API server as a child process in the namespace: it prints its kubeconfig path, then takes
 * one JSON command per line on stdin (a FakeApiServer method and its arguments) and answers "ok".
 */
const SERVER_SCRIPT = `
const { FakeApiServer } = require(process.argv[1]);
const readline = require('node:readline');
const server = new FakeApiServer();
server.start().then(() => {
  process.stdout.write(JSON.stringify({ kubeconfig: server.kubeconfigPath }) + '\\n');
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const { method, args } = JSON.parse(line);
    server[method](...args);
    process.stdout.write('ok\\n');
  }).on('close', () => server.close().then(() => process.exit(0)));
});`;

class ApiServerProcess {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;

  constructor() {
    this.child = spawn('ip', ['netns', 'exec', NETNS, process.execPath, '-e', SERVER_SCRIPT, FAKE_APISERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
    if (this.child.stdout === null) throw new Error('no stdout');
    // A command written after the server died fails with EPIPE: nextLine() reports that (the server does not
    // answer, its exit code set) instead of the write's error ending the test process.
    this.child.stdin?.on('error', () => undefined);
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.waiter?.();
    });
  }

  private async nextLine(): Promise<string> {
    const deadline = Date.now() + 15_000;
    while (this.lines.length === 0) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error('the fake API server does not answer');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 200);
      });
    }
    return this.lines.shift() ?? '';
  }

  async kubeconfig(): Promise<string> {
    return (JSON.parse(await this.nextLine()) as { kubeconfig: string }).kubeconfig;
  }

  async call(method: string, ...args: unknown[]): Promise<void> {
    this.child.stdin?.write(`${JSON.stringify({ method, args })}\n`);
    assert.equal(await this.nextLine(), 'ok');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

let apiServer: ApiServerProcess | null = null;
let agent: ChildProcess | null = null;
let agentLog = '';

/** Runs a command in the namespace, asynchronously so that the agent's log keeps being read meanwhile. */
async function inNetns(args: readonly string[]): Promise<string> {
  return (await promisify(execFile)('ip', ['netns', 'exec', NETNS, ...args], { encoding: 'utf8', timeout: 20_000 })).stdout;
}

/** An HTTP GET: on the debug socket for its paths, else from inside the namespace, where the agent listens on loopback. */
async function get(path: string): Promise<{ status: number; body: string }> {
  if (DEBUG_PATHS.includes(new URL(path, 'http://agent').pathname)) return getOverSocket(DEBUG_SOCKET, path, 10_000);
  const script = 'fetch(process.argv[1]).then(async r=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text()})),e=>process.stdout.write(JSON.stringify({status:0,body:String(e)})))';
  return JSON.parse(await inNetns([process.execPath, '-e', script, `http://${LISTEN}${path}`])) as { status: number; body: string };
}

async function waitFor<T>(what: string, fn: () => Promise<T | null>, ms = 40_000): Promise<T> {
  const end = Date.now() + ms;
  let lastError = '';
  for (;;) {
    try {
      const v = await fn();
      if (v !== null) return v;
    } catch (err) {
      lastError = String(err);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} ${lastError}\nagent log:\n${agentLog}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function nftTable(): Promise<string> {
  return inNetns(['nft', 'list', 'table', 'inet', TABLE]);
}

/** The agent's log lines (pino JSON) whose msg matches. */
function logLines(re: RegExp): { level: number; msg: string; kind?: string }[] {
  return agentLog.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; kind?: string }).filter((l) => re.test(l.msg));
}

before(async () => {
  if (SKIP) return;
  execFileSync('ip', ['netns', 'add', NETNS]);
  await inNetns(['ip', 'link', 'set', 'lo', 'up']);
  apiServer = new ApiServerProcess();
  const kubeconfig = await apiServer.kubeconfig();
  await apiServer.call('put', 'namespaces', makeNamespace('shop'));
  await apiServer.call('put', 'pods', makePod('shop', 'server', { node: 'n1', labels: { app: 'server' }, ips: [SERVER_IP], ports: [{ name: 'http', containerPort: 80 }] }));
  await apiServer.call('put', 'pods', makePod('shop', 'client', { node: 'n2', labels: { access: 'true' }, ips: [CLIENT_IP] }));
  // RBAC refuses the agent's first lists of network policies.
  await apiServer.call('failNext', 'networkpolicies', 'list', { kind: 'status', code: 403, message: FORBIDDEN }, 1000);
  agent = spawn('ip', ['netns', 'exec', NETNS, process.execPath, MAIN, 'run', '--kubeconfig', kubeconfig, '--node-name', 'n1', '--metrics-listen', LISTEN, '--debug-socket', DEBUG_SOCKET, '--table', TABLE], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (d: Buffer) => { agentLog += d.toString(); });
  agent.stderr?.on('data', (d: Buffer) => { agentLog += d.toString(); });
});

after(async () => {
  if (SKIP) return;
  if (agent !== null && agent.exitCode === null) {
    const exited = new Promise((r) => agent?.once('exit', r));
    agent.kill('SIGKILL');
    await exited;
  }
  await apiServer?.stop();
  try {
    await inNetns([process.execPath, MAIN, 'cleanup', '--table', TABLE]);
  } finally {
    execFileSync('ip', ['netns', 'delete', NETNS]);
    rmSync(dirname(DEBUG_SOCKET), { recursive: true, force: true });
  }
});

test('a 403 on a list is one clear log line naming what to grant, and /readyz says why it is not ready', { skip: SKIP }, async (t) => {
  const readyz = await waitFor('/readyz to name the 403', async () => {
    const r = await get('/readyz');
    return /403 Forbidden/.test(r.body) ? r : null;
  });
  assert.equal(readyz.status, 503);
  t.diagnostic(readyz.body.trim()); // the message README's troubleshooting quotes
  assert.match(readyz.body, /^not ready: dataplane: waiting for the first complete listing of the cluster\n/);
  assert.match(readyz.body, /^source\/NetworkPolicy failing since \S+( \(within the 10 s grace period\))?: Kubernetes source: cannot list networkpolicies in all namespaces: 403 Forbidden \(networkpolicies\.networking\.k8s\.io is forbidden: .*\)\. Grant the agent's ServiceAccount the verbs "list" and "watch" on "networkpolicies" in API group "networking\.k8s\.io"/m);
  const refused = logLines(/^Kubernetes source: cannot list networkpolicies/);
  assert.ok(refused.length >= 1, agentLog);
  // One line per failed attempt, at error level (50), not the same message twice.
  const attempts = agentLog.split('\n').filter((l) => l.includes('cannot list networkpolicies')).length;
  assert.equal(attempts, refused.length, `each refusal is logged once:\n${agentLog}`);
  assert.ok(refused.every((l) => l.level === 50));
  assert.equal((await inNetns(['nft', 'list', 'tables'])).includes(TABLE), false, 'nothing is programmed before the first complete listing');
});

test('once RBAC allows the list, /readyz turns ready; a policy written through the API shows in /rules and the table holds the pods\' addresses', { skip: SKIP }, async () => {
  assert.ok(apiServer !== null);
  await apiServer.call('clearFaults');
  await waitFor('/readyz 200', async () => ((await get('/readyz')).status === 200 ? true : null));
  assert.match(agentLog, /"msg":"first list of namespaces, pods and network policies complete"/);
  const unisolated = JSON.parse((await get('/rules')).body) as { pods: { pod: string; ingress: { isolatedBy: string[] } }[] };
  assert.deepEqual(unisolated.pods.map((p) => [p.pod, p.ingress.isolatedBy]), [['shop/server', []]], 'no policy yet');

  await apiServer.call('put', 'networkpolicies', makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] }));
  const rules = await waitFor('the policy in /rules', async () => {
    const r = JSON.parse((await get('/rules?policy=shop/server-in&verbose=1')).body) as { pods: { pod: string; ingress: { isolatedBy: string[]; rules: { rule: string; addresses?: string[] }[] } }[] };
    return r.pods[0]?.ingress.isolatedBy.includes('shop/server-in') === true ? r : null;
  });
  assert.deepEqual(rules.pods.map((p) => p.pod), ['shop/server']);
  assert.equal(rules.pods[0]?.ingress.rules[0]?.rule, 'shop/server-in/ingress/0');
  const table = await waitFor('the table to hold both addresses', async () => {
    const t = await nftTable();
    return t.includes(SERVER_IP) && t.includes(CLIENT_IP) ? t : null;
  });
  assert.match(table, new RegExp(`${SERVER_IP.replace(/\./g, '\\.')} : jump in_[0-9a-f]{16}`), 'the local pod is in the ingress map');
  const metrics = (await get('/metrics')).body;
  assert.match(metrics, /netpol_agent_programming_latency_seconds_count\{kind="NetworkPolicy"\} 1/);
  assert.match(metrics, /netpol_agent_source_objects\{kind="Pod"\} 2/);
});

test('an unreachable API server is reported and the table keeps enforcing; SIGTERM leaves it in place', { skip: SKIP }, async (t) => {
  assert.ok(apiServer !== null && agent !== null);
  const before = await nftTable();
  await apiServer.stop();
  apiServer = null;
  // The open watches are cut (ECONNRESET), then every attempt is refused until the server is back.
  await waitFor('the unreachable API server in the log', async () => (logLines(/ECONNREFUSED/).length > 0 ? true : null));
  const line = logLines(/ECONNREFUSED/)[0]?.msg ?? '';
  t.diagnostic(line); // the message README's troubleshooting quotes
  assert.match(line, /^Kubernetes source: (list|watch) \S+( in all namespaces)?: cannot reach the API server at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED .*; retrying in \d+\.\d s, the last known state stays enforced$/);
  assert.equal((await get('/readyz')).status, 200, 'the last known state stays enforced, and ready');
  assert.equal(await nftTable(), before);

  const exited = new Promise<number | null>((r) => agent?.once('exit', (code) => r(code)));
  agent.kill('SIGTERM');
  assert.equal(await exited, 0);
  agent = null;
  assert.equal(await nftTable(), before, 'SIGTERM leaves the table as it was');
  assert.match(agentLog, /agent stopped; the kernel table stays in place and keeps enforcing/);
});
