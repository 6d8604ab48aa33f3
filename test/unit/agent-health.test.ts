// Health through startAgent, the real wiring (source -> pipeline -> loop -> registry -> /readyz), on
// the nftables fake: against the fake API server, an RBAC refusal past the grace period makes the
// agent not ready and the next successful read makes it ready again; one watch reset within the grace
// period leaves it ready throughout; a broken datastore file makes it not ready with the reason, a fixed
// one ready again, and the table keeps the last good state meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { startAgent } from '../../src/agent';
import type { AgentOptions, RunningAgent } from '../../src/agent';
import { FakeNft } from '../support/fake-nft';
import { FakeApiServer, forbiddenMessage } from '../support/fake-apiserver';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const NODE = 'node-1';
/** Generous: a condition that holds within a few seconds is waited for this long, never asserted as a speed. */
const BOUND_MS = 60_000;

const cluster = [
  makeNamespace('shop'),
  makePod('shop', 'web', { node: NODE, labels: { app: 'web' }, ips: ['10.0.1.10'] }),
  makePod('shop', 'client', { node: 'node-2', labels: { access: 'true' }, ips: ['10.0.2.10'] }),
];
const policy = makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }] }] });

async function agentWith(backend: FakeNft, options: Partial<AgentOptions>): Promise<RunningAgent> {
  return startAgent({
    node: NODE,
    table: backend.table,
    metricsListen: '127.0.0.1:0',
    debugSocket: null,
    resyncPeriodMs: 0,
    logger: pino({ level: 'silent' }),
    backend,
    dropLog: null,
    ...options,
  });
}

async function readyz(agent: RunningAgent): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${agent.address.port}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function waitFor<T>(what: string, fn: () => Promise<T | null> | T | null, last: () => string = () => ''): Promise<T> {
  const end = Date.now() + BOUND_MS;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} ${last()}`.trim());
    await new Promise((r) => setTimeout(r, 25));
  }
}

const waitReadyz = (agent: RunningAgent, status: number, body: RegExp = /./): Promise<{ status: number; body: string }> => {
  let seen = '';
  return waitFor(`/readyz ${status} ${body}`, async () => {
    const r = await readyz(agent);
    seen = `${r.status} ${r.body}`;
    return r.status === status && body.test(r.body) ? r : null;
  }, () => `(last: ${seen})`);
};

/** An agent on the fake API server (which holds the cluster and the policy), ready, stopped after `run`. */
async function withAgentOnApi(table: string, sourceFailureGraceMs: number, run: (agent: RunningAgent, server: FakeApiServer, backend: FakeNft) => Promise<void>): Promise<void> {
  const server = new FakeApiServer();
  await server.start();
  try {
    for (const o of cluster) server.put(o === cluster[0] ? 'namespaces' : 'pods', o as Record<string, unknown>);
    server.put('networkpolicies', policy as Record<string, unknown>);
    const backend = new FakeNft(`${table}_${process.pid}`);
    const agent = await agentWith(backend, { kubeconfig: server.kubeconfigPath, sourceFailureGraceMs });
    try {
      await waitReadyz(agent, 200, /^ready\n/);
      await waitFor('the pods watch', () => (server.openWatches('pods') === 1 ? true : null));
      await run(agent, server, backend);
    } finally {
      await agent.stop();
    }
  } finally {
    await server.close();
  }
}

test('RBAC refusing the watch past the grace period: not ready naming the kind and the 403; the next accepted watch makes it ready again', async () => {
  await withAgentOnApi('health_rbac', 200, async (agent, server, backend) => {
    const programmed = backend.dump();
    server.failNext('pods', 'watch', { kind: 'status', code: 403, message: forbiddenMessage('watch', 'pods') }, 2);
    server.resetWatches('pods');
    const refused = await waitReadyz(agent, 503, /^not ready: source\/Pod: Kubernetes source: cannot watch pods in all namespaces: 403 Forbidden/);
    assert.match(refused.body, /^source\/Pod failing since \S+: .*Grant the agent's ServiceAccount the verbs "list" and "watch" on "pods"/m);
    assert.match(refused.body, /^source\/Namespace ok since /m, 'the other kinds are listed with their own level');
    assert.equal(backend.dump(), programmed, 'the last state stays enforced');
    const ready = await waitReadyz(agent, 200);
    assert.match(ready.body, /^ready\n(.*\n)*source\/Pod ok since \S+: reads$/m);
    const metrics = await (await fetch(`http://127.0.0.1:${agent.address.port}/metrics`)).text();
    for (const c of ['source/Pod', 'source/Namespace', 'source/NetworkPolicy', 'dataplane']) assert.match(metrics, new RegExp(`^netpol_agent_component_ready\\{component="${c}"\\} 1$`, 'm'));
  });
});

test('one watch reset (as an API server restart causes) within the grace period: ready throughout', async () => {
  await withAgentOnApi('health_reset', 10_000, async (agent, server) => {
    const watchesBefore = server.count('pods', 'watch');
    const answers = new Set<number>();
    server.resetWatches('pods');
    // Sampled until the watch is open again and the kind reads: every answer meanwhile is 200.
    await waitFor('the pods watch open again and reading', async () => {
      answers.add((await readyz(agent)).status);
      return server.count('pods', 'watch') > watchesBefore && server.openWatches('pods') === 1 && agent.health.level('source/Pod')?.ok === true ? true : null;
    });
    answers.add((await readyz(agent)).status);
    assert.deepEqual([...answers], [200]);
  });
});

test('a broken datastore file past the grace period: not ready naming the file, the table unchanged; fixed: ready again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-health-'));
  const file = join(dir, 'cluster.yaml');
  const write = (text: string): void => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };
  const good = [...cluster, policy].map((o) => stringify(o)).join('---\n');
  write(good);
  const backend = new FakeNft(`health_file_${process.pid}`);
  const agent = await agentWith(backend, { datastoreFile: dir, sourceFailureGraceMs: 200 });
  try {
    await waitReadyz(agent, 200);
    const programmed = backend.dump();
    assert.match(programmed, /10\.0\.2\.10/, 'the policy\'s peer is programmed');
    write('just one line of text\n');
    const broken = await waitReadyz(agent, 503, /^not ready: source\/file: .*cluster\.yaml: document 1 is not a Kubernetes object \("just one line of text"\)/);
    assert.match(broken.body, /^source\/file failing since \S+: /m);
    assert.equal(backend.dump(), programmed, 'the last good state stays enforced');
    write(good);
    const fixed = await waitReadyz(agent, 200);
    assert.match(fixed.body, /^source\/file ok since \S+: reads$/m);
    assert.equal(backend.dump(), programmed);
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
