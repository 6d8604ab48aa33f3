// netpol-agent-cni (cni-plugin/, Go on the CNI project's skel) against the CNI specification 1.1: the
// binary is run as a runtime runs it, with CNI_* variables and the network configuration on stdin,
// beside a fake agent on a unix socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CNI_PLUGIN_DIR, buildCniPlugin, runCniPlugin } from '../support/cni-plugin';
import type { PluginRun } from '../support/cni-plugin';

let dir = '';

before(() => {
  buildCniPlugin();
  dir = mkdtempSync(join(tmpdir(), 'netpol-cni-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Run = PluginRun;

const RUNTIME_ENV = { CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=u-1' };

function run(command: string, stdin: string | Buffer, env: Record<string, string> = {}): Promise<Run> {
  return runCniPlugin({ CNI_COMMAND: command, ...RUNTIME_ENV, ...env }, stdin);
}

const PREV_RESULT = '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},{"address":"fd00::5/64"}],"dns":{}}';

function netconf(extra: Record<string, unknown> = {}, prevResult: string | null = PREV_RESULT): string {
  const base = JSON.stringify({ cniVersion: '1.0.0', name: 'pods', type: 'netpol-agent-cni', ...extra });
  return prevResult === null ? base : `${base.slice(0, -1)},"prevResult":${prevResult}}`;
}

interface CniError { code: number; msg: string; details?: string }

function cniError(r: Run): CniError {
  assert.equal(r.code, 1, `exit status 1 expected; stdout ${r.stdout} stderr ${r.stderr}`);
  return JSON.parse(r.stdout) as CniError;
}

/** ADD's result: prevResult, in the configuration's cniVersion (the CNI library leaves an empty "dns" out). */
function assertPrevResult(r: Run, expected = PREV_RESULT): void {
  assert.equal(r.code, 0, `${r.stdout} ${r.stderr}`);
  const withoutEmptyDns = (json: string): unknown => {
    const { dns, ...rest } = JSON.parse(json) as Record<string, unknown>;
    return dns === undefined || JSON.stringify(dns) === '{}' ? rest : { dns, ...rest };
  };
  assert.deepEqual(withoutEmptyDns(r.stdout), withoutEmptyDns(expected));
}

/** A fake agent: answers each request line with answer(request) (null: never); records the requests. */
async function fakeAgent(answer: (req: Record<string, unknown>) => string | null): Promise<{ path: string; requests: Record<string, unknown>[]; server: Server; close(): Promise<void> }> {
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
      if (reply !== null && !socket.destroyed) socket.end(`${reply}\n`);
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

const VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

test('VERSION lists the supported versions whatever stdin says (an unsupported version, nothing, garbage)', async () => {
  for (const stdin of ['{"cniVersion":"0.4.0"}', '{"cniVersion":"9.9.9"}', '', 'not json']) {
    const r = await run('VERSION', stdin);
    assert.equal(r.code, 0, `${stdin}: ${r.stdout}`);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.1.0', supportedVersions: VERSIONS }, stdin);
  }
});

test('bad JSON is error 6 (failed to decode)', async () => {
  for (const input of ['{"cniVersion":"1.0.0",', '{"a":1,}', '[1, 2', '{"a":"\\x"}', '{"a":tru}', '{"a":1} x', '"just a string"', '']) {
    const e = cniError(await run('ADD', input));
    assert.equal(e.code, 6, input);
  }
});

test('an unsupported or missing cniVersion is error 1', async () => {
  for (const conf of [netconf({ cniVersion: '9.9.9' }), netconf({ cniVersion: '0.2.0' }), JSON.stringify({ name: 'pods', type: 'netpol-agent-cni' })]) {
    const e = cniError(await run('ADD', conf));
    assert.equal(e.code, 1, conf);
    assert.match(e.msg, /incompatible CNI versions/);
  }
});

test('the spec\'s version rules: CHECK from 0.4.0, GC and STATUS from 1.1.0 (error 1 before)', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    for (const v of VERSIONS) {
      const prev = JSON.stringify({ cniVersion: v, ips: [{ address: '10.244.0.5/24', ...(v < '1.0.0' ? { version: '4' } : {}) }] });
      const conf = (extra: Record<string, unknown> = {}) => netconf({ cniVersion: v, socketPath: agent.path, ...extra }, prev);
      const check = await run('CHECK', conf());
      if (v >= '0.4.0') assert.equal(check.code, 0, `CHECK ${v}: ${check.stdout}`);
      else assert.equal(cniError(check).code, 1, `CHECK ${v}`);
      for (const command of ['GC', 'STATUS']) {
        const r = await run(command, netconf({ cniVersion: v, socketPath: agent.path }, null));
        if (v >= '1.1.0') assert.deepEqual([r.code, r.stdout], [0, ''], `${command} ${v}`);
        else assert.equal(cniError(r).code, 1, `${command} ${v}`);
      }
    }
  } finally {
    await agent.close();
  }
});

test('ADD in every supported version prints prevResult as a result of that version', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    for (const v of VERSIONS) {
      const prev = v < '1.0.0'
        ? JSON.stringify({ cniVersion: v, ips: [{ version: '4', address: '10.244.0.5/24', interface: 0 }], interfaces: [{ name: 'eth0' }], dns: {} })
        : JSON.stringify({ cniVersion: v, ips: [{ address: '10.244.0.5/24', interface: 0 }], interfaces: [{ name: 'eth0' }], dns: {} });
      const r = await run('ADD', netconf({ cniVersion: v, socketPath: agent.path }, prev));
      assertPrevResult(r, prev);
    }
    assert.deepEqual(agent.requests.map((r) => r['ips']), VERSIONS.map(() => ['10.244.0.5/24']));
  } finally {
    await agent.close();
  }
});

test('ADD without prevResult, or with a prevResult without addresses, is error 7 and explains the chaining', async () => {
  const missing = cniError(await run('ADD', netconf({}, null)));
  assert.equal(missing.code, 7);
  assert.match(missing.msg, /chained plugin/);
  const noIps = cniError(await run('ADD', netconf({}, '{"cniVersion":"1.0.0","ips":[]}')));
  assert.equal(noIps.code, 7);
  assert.match(noIps.msg, /no ips/);
  for (const bad of ['{"cniVersion":"1.0.0","ips":[{"address":5}]}', '{"cniVersion":"1.0.0","ips":[{"address":"not-an-ip"}]}', '"a string"']) {
    assert.equal(cniError(await run('ADD', netconf({}, bad))).code, 7, bad);
  }
});

test('an unknown or missing CNI_COMMAND is error 4', async () => {
  const e = cniError(await run('FROB', netconf()));
  assert.equal(e.code, 4);
  assert.match(e.msg, /unknown CNI_COMMAND: FROB/);
  const missing = await run('', netconf());
  assert.equal(cniError(missing).code, 4);
  assert.match(missing.stderr, /run by the container runtime with CNI_COMMAND set/);
});

test('the runtime\'s names are validated as the spec says: container ID (4), network name (7), interface name (4)', async () => {
  assert.equal(cniError(await run('ADD', netconf(), { CNI_CONTAINERID: 'bad id!' })).code, 4);
  assert.equal(cniError(await run('ADD', netconf({ name: 'po ds' }))).code, 7);
  assert.equal(cniError(await run('ADD', netconf({ name: '' }))).code, 7);
  for (const ifname of ['a/b', 'eth0123456789012345', '..']) assert.equal(cniError(await run('ADD', netconf(), { CNI_IFNAME: ifname })).code, 4, ifname);
  assert.equal(cniError(await run('DEL', netconf(), { CNI_CONTAINERID: '' })).code, 4);
});

test('ADD without the pod in CNI_ARGS, or with CNI_ARGS it cannot read, is error 4', async () => {
  const e = cniError(await run('ADD', netconf(), { CNI_ARGS: 'IgnoreUnknown=1' }));
  assert.equal(e.code, 4);
  assert.match(e.msg, /K8S_POD_NAMESPACE/);
  assert.equal(cniError(await run('ADD', netconf(), { CNI_ARGS: 'K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;OTHER=1' })).code, 4);
});

test('bad plugin settings are error 7 naming the setting', async () => {
  for (const [extra, what] of [[{ failurePolicy: 'maybe' }, /failurePolicy/], [{ timeoutMs: 0 }, /timeoutMs/], [{ timeoutMs: 1.5 }, /timeoutMs/], [{ timeoutMs: '5' }, /timeoutMs/], [{ socketPath: '' }, /socketPath/], [{ socketPath: `/${'x'.repeat(120)}` }, /socketPath/]] as const) {
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

test('socket absent, fail-open: ADD prints prevResult and logs on stderr', async () => {
  const r = await run('ADD', netconf({ socketPath: join(dir, 'absent.sock'), failurePolicy: 'fail-open' }));
  assertPrevResult(r);
  assert.match(r.stderr, /team-a\/web-0 starts without confirmed network policy rules/);
});

test('agent answers ok: ADD sends the pod and its addresses, and prints prevResult', async () => {
  const agent = await fakeAgent(() => '{"result":"ok"}');
  try {
    assertPrevResult(await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 3000 })));
    assert.deepEqual(agent.requests, [{ op: 'add', namespace: 'team-a', name: 'web-0', uid: 'u-1', containerId: 'c0ffee', ips: ['10.244.0.5/24', 'fd00::5/64'], timeoutMs: 3000 }]);
  } finally {
    await agent.close();
  }
});

test('agent that never answers: only timeoutMs ends ADD; fail-closed fails with 11, fail-open starts the pod', async () => {
  const agent = await fakeAgent(() => null);
  try {
    const e = cniError(await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 200 })));
    assert.equal(e.code, 11);
    assert.match(e.details ?? '', /did not answer within 200 ms/);
    assertPrevResult(await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 200, failurePolicy: 'fail-open' })));
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
    assertPrevResult(open);
    assert.match(open.stderr, /not known from the API/);
  } finally {
    await agent.close();
  }
});

test('agent closes without answering, or answers garbage: the agent is unavailable (11)', async () => {
  for (const reply of [null, 'not json', '{"result":5}', '\u00ff\ufffd']) {
    const agent = await fakeAgent(() => reply);
    if (reply === null) agent.server.on('connection', (s) => setImmediate(() => s.end()));
    try {
      const e = cniError(await run('ADD', netconf({ socketPath: agent.path, timeoutMs: 5000 })));
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
    assert.deepEqual([r.code, r.stdout], [0, '']);
    assert.equal(agent.requests[0]?.['op'], 'del');
    assert.deepEqual(agent.requests[0]?.['ips'], ['10.244.0.5/24', 'fd00::5/64']);
  } finally {
    await agent.close();
  }
  const absent = await run('DEL', netconf({ socketPath: join(dir, 'absent.sock') }, null));
  assert.deepEqual([absent.code, absent.stdout], [0, '']);
});

test('DEL on input it cannot use succeeds and releases the sandbox by its container ID', async () => {
  const agent = await fakeAgent(() => '{"result":"error","message":"bad del request"}');
  const many = JSON.stringify({ cniVersion: '1.0.0', ips: Array.from({ length: 5000 }, (_, i) => ({ address: `10.${i >> 8}.${i & 255}.1/32` })) });
  try {
    const garbage: [string, Record<string, string>][] = [
      [netconf({ socketPath: agent.path }, '"not a result"'), {}],
      [netconf({ socketPath: agent.path }, '{"ips":[{"address":"not-an-ip"}]}'), {}],
      [netconf({ socketPath: agent.path }, '{"ips":{"address":5}}'), {}],
      [netconf({ socketPath: agent.path }, many), {}],
      [netconf({ socketPath: agent.path }), { CNI_ARGS: 'garbage;=;;' }],
      [netconf({ socketPath: agent.path, timeoutMs: 'soon' }), {}],
    ];
    for (const [conf, env] of garbage) {
      const r = await run('DEL', conf, env);
      assert.deepEqual([r.code, r.stdout], [0, ''], `${conf.slice(0, 200)} ${JSON.stringify(env)}: ${r.stderr}`);
    }
    // The agent is told of each, with the addresses it could read (none but the last's); the settings it
    // cannot read leave it without the agent's address.
    const told = agent.requests.map((r) => [r['op'], r['containerId'], r['ips']]);
    assert.deepEqual(told, [...garbage.slice(0, 4).map(() => ['del', 'c0ffee', []]), ['del', 'c0ffee', ['10.244.0.5/24', 'fd00::5/64']]]);
  } finally {
    await agent.close();
  }
});

test('CHECK validates configuration and prevResult; STATUS reflects the agent under each failure policy', async () => {
  assert.equal((await run('CHECK', netconf())).code, 0);
  assert.equal(cniError(await run('CHECK', netconf({}, '{"ips":[]}'))).code, 7);
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

test('output is valid JSON in UTF-8 whatever bytes the input holds', async () => {
  const agent = await fakeAgent(() => '{"result":"error","message":"refused \udc00"}');
  try {
    const inputs = [
      Buffer.concat([Buffer.from('{"cniVersion":"1.0.0","name":"pods","failurePolicy":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]),
      Buffer.concat([Buffer.from('{"cniVersion":"1.0.0","name":"pods",'), Buffer.from([0xff, 0x00, 0x01])]),
      Buffer.from(netconf({ socketPath: agent.path })),
      Buffer.from(netconf({ socketPath: agent.path }, '{"ips":[{"address":"10.0.0.1/8"}],"note":"\\ud83d \\u0000"}')),
    ];
    for (const input of inputs) {
      const r = await run('ADD', input); // runCniPlugin decodes stdout strictly as UTF-8
      assert.doesNotThrow(() => JSON.parse(r.stdout), r.stdout);
    }
  } finally {
    await agent.close();
  }
});

test('the Go tests pass, with the fuzz targets\' seed corpora (go test)', () => {
  execFileSync('go', ['test', '-mod=vendor', '-count=1', '.'], { cwd: CNI_PLUGIN_DIR, stdio: 'inherit', env: { ...process.env, GOPROXY: 'off', GOFLAGS: '-buildvcs=false', PATH: `${process.env['PATH'] ?? ''}:/usr/local/go/bin` } });
});
