// The chained CNI plugin with `netpol-agent run --cni-socket --cni-conf-dir` for real: the agent process
// in a network namespace of its own (unshare; its nftables table goes with the namespace), on a file
// datastore. The main CNI rewrites its conflist without our entry under the running agent, which chains
// the plugin again; then the Go plugin's ADD, run as a runtime runs it, returns once the pod's rules are
// committed. Needs root.
//   node --test build/test/netns/cni-agent.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PLUGIN_TYPE, installPlugin } from '../../src/cni';
import { makeNamespace, makePod, makePolicy } from '../support/builders';
import { buildCniPlugin } from '../support/cni-plugin';
import { AGENT_MAIN } from '../support/node-agent';

const SKIP = process.getuid?.() !== 0 ? 'needs root (a network namespace, nftables)' : false;
const FLANNEL = '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}';

let dir = '';
let agent: ChildProcess | null = null;
let agentLog = '';
let plugin = '';

/** Resolves when the agent's log holds the text (the agent's own report), or rejects when it exits. */
function logged(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (agentLog.includes(text)) {
        agent?.stdout?.off('data', check);
        resolve();
      }
    };
    agent?.stdout?.on('data', check);
    agent?.once('exit', (code) => reject(new Error(`the agent exited (${code}) before logging "${text}":\n${agentLog}`)));
    check();
  });
}

before(() => {
  if (SKIP) return;
  plugin = buildCniPlugin();
  dir = mkdtempSync(join(tmpdir(), 'netpol-cni-agent-'));
  mkdirSync(join(dir, 'net.d'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'net.d/10-flannel.conflist'), FLANNEL);
  writeFileSync(join(dir, 'cluster.yaml'), [
    makeNamespace('shop'),
    makePod('shop', 'web-0', { node: 'node-1', labels: { app: 'web' }, ips: [] }),
    makePolicy('shop', 'deny-all', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress', 'Egress'] }),
  ].map((o) => stringify(o)).join('---\n'));
});

after(async () => {
  if (agent !== null && agent.exitCode === null) {
    const exited = new Promise((r) => agent?.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('the main CNI rewrites its conflist under the running agent: the plugin is chained again, and its ADD returns once the rules are committed', { skip: SKIP, timeout: 60_000 }, async () => {
  const confDir = join(dir, 'net.d');
  const socketPath = join(dir, 'cni.sock');
  const conflist = join(confDir, '10-flannel.conflist');
  installPlugin({ confDir, binDir: join(dir, 'bin'), pluginBinary: plugin, socketPath, timeoutMs: 10_000, failurePolicy: 'fail-closed' });
  agent = spawn('unshare', ['--net', process.execPath, AGENT_MAIN, 'run', '--node-name', 'node-1', '--datastore-file', join(dir, 'cluster.yaml'),
    '--table', `cni_agent_test_${process.pid}`, '--metrics-listen', '127.0.0.1:0', '--debug-socket', join(dir, 'debug', 'debug.sock'), '--resync-period', '0', '--no-drop-log', '--cni-socket', socketPath, '--cni-conf-dir', confDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (d: Buffer) => (agentLog += d.toString()));
  agent.stderr?.on('data', (d: Buffer) => (agentLog += d.toString()));
  await logged(`watching ${confDir}`);

  // flannel's install-cni on its restart: its own conflist renamed over ours.
  const rechained = logged('was rewritten without netpol-agent-cni: chained it again');
  writeFileSync(`${conflist}.tmp`, FLANNEL);
  renameSync(`${conflist}.tmp`, conflist);
  await rechained;
  const plugins = (JSON.parse(readFileSync(conflist, 'utf8')) as { plugins: Record<string, unknown>[] }).plugins;
  assert.deepEqual(plugins.map((p) => p['type']), ['flannel', 'portmap', PLUGIN_TYPE]);
  assert.deepEqual(plugins.at(-1), { type: PLUGIN_TYPE, socketPath, timeoutMs: 10_000, failurePolicy: 'fail-closed' });

  // The runtime runs the chain's entry (the plugin reaches the agent's socket from the host namespace).
  const entry = { cniVersion: '0.3.1', name: 'cbr0', ...plugins.at(-1), prevResult: { cniVersion: '0.3.1', ips: [{ version: '4', address: '10.244.0.7/24' }] } };
  const add = spawnSync(plugin, [], {
    input: JSON.stringify(entry),
    encoding: 'utf8',
    env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/web-0', CNI_IFNAME: 'eth0', CNI_PATH: join(dir, 'bin'), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0' },
  });
  assert.equal(add.status, 0, `${add.stdout}${add.stderr}\nagent log:\n${agentLog}`);
  assert.deepEqual((JSON.parse(add.stdout) as { ips: { address: string }[] }).ips.map((ip) => ip.address), ['10.244.0.7/24']);
  // The agent's account of it (its log reaches us once spawnSync gives the event loop back).
  await logged('CNI ADD of pod shop/web-0: rules committed');
});
