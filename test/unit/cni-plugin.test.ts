// netpol-agent-cni (native/cni) against the CNI specification: the binary is run as a runtime runs it,
// with CNI_* variables and the network configuration on stdin, beside a fake agent on a unix socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CNI_DIR = resolve(__dirname, '../../../native/cni');
const PLUGIN = join(CNI_DIR, 'build/netpol-agent-cni');
let dir = '';

before(() => {
  execFileSync('make', ['-s', '-C', CNI_DIR], { stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'netpol-cni-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function run(command: string, stdin: string, env: Record<string, string> = {}): Promise<Run> {
  const started = performance.now();
  return new Promise((done, failed) => {
    const child = spawn(PLUGIN, [], {
      env: { CNI_COMMAND: command, CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=u-1', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', failed);
    child.on('close', (code) => done({ code, stdout, stderr, ms: performance.now() - started }));
    child.stdin.end(stdin);
  });
}

const PREV_RESULT = '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},{"address":"fd00::5/64"}],"dns":{}}';

function netconf(extra: Record<string, unknown> = {}, prevResult: string | null = PREV_RESULT): string {
  const base = JSON.stringify({ cniVersion: '1.0.0', name: 'pods', type: 'netpol-agent-cni', ...extra });
  return prevResult === null ? base : `${base.slice(0, -1)},"prevResult":${prevResult}}`;
}

interface CniError { cniVersion: string; code: number; msg: string; details?: string }

function cniError(r: Run): CniError {
  assert.equal(r.code, 1, `exit status 1 expected; stdout ${r.stdout} stderr ${r.stderr}`);
  return JSON.parse(r.stdout) as CniError;
}

/** A fake agent: answers each request line with answer(request) after delayMs; records the requests. */
async function fakeAgent(answer: (req: Record<string, unknown>) => string | null, delayMs = 0): Promise<{ path: string; requests: Record<string, unknown>[]; server: Server; close(): Promise<void> }> {
  const path = join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`);
  const requests: Record<string, unknown>[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      const req = JSON.parse(data.slice(0, nl)) as Record<string, unknown>;
      requests.push(req);
      const reply = answer(req);
      setTimeout(() => { if (reply !== null && !socket.destroyed) socket.end(`${reply}\n`); }, delayMs).unref();
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    requests,
    server,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

test('VERSION lists the supported versions, in the cniVersion of the request', async () => {
  const r = await run('VERSION', '{"cniVersion":"0.4.0"}');
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const empty = await run('VERSION', '');
  assert.equal(JSON.parse(empty.stdout).cniVersion, '1.0.0');
});

test('bad JSON is error 6 (failed to decode), with where it failed', async () => {
  for (const input of ['{"cniVersion":"1.0.0",', '{"a":1,}', '[1, 2', '{"a":"\\x"}', '{"a":tru}', '{"a":1} x', '"just a string"']) {
    const e = cniError(await run('ADD', input));
    assert.equal(e.code, 6, input);
    assert.match(e.msg, /not valid JSON|must be a JSON object/, input);
  }
});

test('an unsupported cniVersion is error 1', async () => {
  const e = cniError(await run('ADD', netconf({ cniVersion: '9.9.9' })));
  assert.equal(e.code, 1);
  assert.match(e.msg, /unsupported cniVersion 9\.9\.9/);
});

test('ADD without prevResult, or with a prevResult without addresses, is error 7 and explains the chaining', async () => {
  const missing = cniError(await run('ADD', netconf({}, null)));
  assert.equal(missing.code, 7);
  assert.match(missing.msg, /chained plugin/);
  const noIps = cniError(await run('ADD', netconf({}, '{"cniVersion":"1.0.0","ips":[]}')));
  assert.equal(noIps.code, 7);
  assert.match(noIps.msg, /no ips/);
  const badIp = cniError(await run('ADD', netconf({}, '{"cniVersion":"1.0.0","ips":[{"address":5}]}')));
  assert.equal(badIp.code, 7);
});

test('an unknown or missing CNI_COMMAND is error 4', async () => {
  const e = cniError(await run('FROB', netconf()));
  assert.equal(e.code, 4);
  assert.match(e.msg, /unknown CNI_COMMAND FROB/);
  const missing = cniError(await run('', netconf()));
  assert.equal(missing.code, 4);
});

test('ADD without the pod in CNI_ARGS is error 4', async () => {
  const e = cniError(await run('ADD', netconf(), { CNI_ARGS: 'IgnoreUnknown=1' }));
  assert.equal(e.code, 4);
  assert.match(e.msg, /K8S_POD_NAMESPACE/);
});

test('bad plugin settings are error 7 naming the setting', async () => {
  for (const [extra, what] of [[{ failurePolicy: 'maybe' }, /failurePolicy/], [{ timeoutMs: 0 }, /timeoutMs/], [{ timeoutMs: 1.5 }, /timeoutMs/], [{ socketPath: '' }, /socketPath/]] as const) {
    const e = cniError(await run('ADD', netconf(extra)));
    assert.equal(e.code, 7);
    assert.match(e.msg, what);
  }
});

test('socket absent, fail-closed (the default): ADD fails with 11 (try again later) naming the pod and the socket', async () => {
  const socketPath = join(dir, 'absent.sock');
  const e = cniError(await run('ADD', netconf({ socketPath })));
  assert.equal(e.code, 11);
  assert.match(e.msg, /team-a\/web-0/);
  assert.match(e.details ?? '', /absent\.sock/);
});

test('socket absent, fail-open: ADD prints prevResult unchanged and logs on stderr', async () => {
  const r = await run('ADD', netconf({ socketPath: join(dir, 'absent.sock'), failurePolicy: 'fail-open' }));
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.stdout, `${PREV_RESULT}\n`);
  assert.match(r.stderr, /team-a\/web-0 starts without confirmed network policy rules/);
});

test('agent answers ok: ADD sends the pod and its addresses, and prints prevResult byte for byte', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    const r = await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 3000 }));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, `${PREV_RESULT}\n`);
    assert.deepEqual(agent.requests, [{ op: 'add', namespace: 'team-a', name: 'web-0', uid: 'u-1', containerId: 'c0ffee', ips: ['10.244.0.5/24', 'fd00::5/64'], timeoutMs: 3000 }]);
  } finally {
    await agent.close();
  }
});

test('agent slower than timeoutMs: fail-closed fails with 11 after the bound; fail-open starts the pod', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}', 2000);
  try {
    const closed = await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 200 }));
    const e = cniError(closed);
    assert.equal(e.code, 11);
    assert.match(e.details ?? '', /did not answer within 200 ms/);
    assert.ok(closed.ms < 1500, `ADD returned after ${closed.ms} ms, not at the 200 ms bound`);
    const open = await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 200, failurePolicy: 'fail-open' }));
    assert.equal(open.code, 0);
    assert.equal(open.stdout, `${PREV_RESULT}\n`);
  } finally {
    await agent.close();
  }
});

test('agent answers an error: fail-closed fails with 100 and the agent\'s reason; fail-open starts the pod', async () => {
  const agent = await fakeAgent(() => '{"result":"error","message":"pod team-a/web-0 not known from the API within 5000 ms"}');
  try {
    const e = cniError(await run('ADD', netconf({ socketPath: agent.path })));
    assert.equal(e.code, 100);
    assert.match(e.details ?? '', /not known from the API/);
    const open = await run('ADD', netconf({ socketPath: agent.path, failurePolicy: 'fail-open' }));
    assert.equal(open.code, 0);
    assert.match(open.stderr, /not known from the API/);
  } finally {
    await agent.close();
  }
});

test('agent closes without answering, or answers garbage: the agent is unavailable (11)', async () => {
  for (const reply of [null, 'not json']) {
    const agent = await fakeAgent(() => reply);
    if (reply === null) agent.server.on('connection', (s) => setTimeout(() => s.end(), 20));
    try {
      const e = cniError(await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 2000 })));
      assert.equal(e.code, 11, String(reply));
    } finally {
      await agent.close();
    }
  }
});

test('DEL tells the agent, prints nothing, and succeeds even when the agent is absent', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    const r = await run('DEL', netconf({ socketPath: agent.path }));
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    assert.equal(agent.requests[0]?.op, 'del');
    assert.deepEqual(agent.requests[0]?.ips, ['10.244.0.5/24', 'fd00::5/64']);
  } finally {
    await agent.close();
  }
  const absent = await run('DEL', netconf({ socketPath: join(dir, 'absent.sock') }, null));
  assert.equal(absent.code, 0);
  assert.equal(absent.stdout, '');
});

test('CHECK accepts a valid configuration; STATUS reflects the agent under each failure policy', async () => {
  assert.equal((await run('CHECK', netconf())).code, 0);
  const absent = join(dir, 'absent.sock');
  const e = cniError(await run('STATUS', netconf({ socketPath: absent, cniVersion: '1.1.0' }, null)));
  assert.equal(e.code, 50);
  assert.equal((await run('STATUS', netconf({ socketPath: absent, cniVersion: '1.1.0', failurePolicy: 'fail-open' }, null))).code, 0);
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    assert.equal((await run('STATUS', netconf({ socketPath: agent.path, cniVersion: '1.1.0' }, null))).code, 0);
    assert.deepEqual(agent.requests, [{ op: 'status' }]);
  } finally {
    await agent.close();
  }
});

test('JSON strings: escapes and surrogate pairs decode, lone surrogates and raw control characters do not', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    const prev = '{"ips":[{"address":"10.244.0.\\u0039/24"}],"note":"\\ud83d\\ude00 \\"q\\" \\\\"}';
    const r = await run('ADD', netconf({ socketPath: agent.path }, prev));
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, `${prev}\n`);
    assert.deepEqual(agent.requests[0]?.ips, ['10.244.0.9/24']);
  } finally {
    await agent.close();
  }
  for (const bad of ['{"a":"\\ud83d"}', '{"a":"x\u0001y"}', '{"a":"\\u0000"}']) assert.equal(cniError(await run('ADD', bad)).code, 6, bad);
});
