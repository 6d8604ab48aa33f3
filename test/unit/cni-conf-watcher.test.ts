// Re-chaining: the main CNI rewrites its configuration under a running watcher (as flannel's install-cni
// does on its restart, by rename, or a plain in-place write), and the watcher puts netpol-agent-cni back
// last in the chain; a .conf written again beside the conflist we made of it; cni-uninstall's marker
// stops it. Each step waits for the watcher's own report of its check, never for a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ConfWatcher, PLUGIN_TYPE, installPlugin, uninstallPlugin } from '../../src/cni';
import type { ConfCheck } from '../../src/cni';

const SETTINGS = { socketPath: '/run/netpol-agent/cni.sock', timeoutMs: 7000, failurePolicy: 'fail-open' as const };
const FLANNEL = '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}';

function node() {
  const root = mkdtempSync(join(tmpdir(), 'netpol-cni-watch-'));
  const confDir = join(root, 'net.d');
  const binDir = join(root, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  const pluginBinary = join(root, 'netpol-agent-cni');
  writeFileSync(pluginBinary, 'plugin');
  return { confDir, binDir, opts: { confDir, binDir, pluginBinary, ...SETTINGS }, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

type Until = (state: ConfCheck['state']) => Promise<ConfCheck>;

/**
 * A node whose conf directory holds the one file given, with the plugin installed, and a running watcher
 * whose checks can be awaited: until(state) resolves at the first check in that state.
 */
async function underWatcher(name: string, text: string, body: (file: string, until: Until, n: ReturnType<typeof node>) => Promise<void>): Promise<void> {
  const n = node();
  writeFileSync(join(n.confDir, name), text);
  installPlugin(n.opts);
  const waiting: { state: ConfCheck['state']; resolve: (c: ConfCheck) => void }[] = [];
  const watcher = new ConfWatcher({
    confDir: n.confDir,
    logger: pino({ level: 'silent' }),
    onCheck: (check) => {
      for (const w of waiting.filter((x) => x.state === check.state)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(check);
      }
    },
  });
  const until: Until = (state) => new Promise((resolve) => waiting.push({ state, resolve }));
  try {
    assert.equal(watcher.start().state, 'chained');
    await body(join(n.confDir, name), until, n);
  } finally {
    watcher.close();
    n.cleanup();
  }
}

const plugins = (file: string): { type: string }[] => (JSON.parse(readFileSync(file, 'utf8')) as { plugins: { type: string }[] }).plugins;

test('the main CNI rewrites its conflist without our entry (by rename, then in place): the watcher chains it again with the settings cni-install wrote', () =>
  underWatcher('10-flannel.conflist', FLANNEL, async (file, until) => {
    // flannel's install-cni: a temporary file renamed over the conflist.
    const rechained = until('rechained');
    writeFileSync(`${file}.tmp`, FLANNEL);
    renameSync(`${file}.tmp`, file);
    assert.deepEqual(await rechained, { state: 'rechained', confFile: file });
    assert.deepEqual(plugins(file).map((p) => p.type), ['flannel', 'portmap', PLUGIN_TYPE]);
    assert.deepEqual(plugins(file).at(-1), { type: PLUGIN_TYPE, ...SETTINGS });
    // An in-place write (truncate, then the bytes).
    const again = until('rechained');
    writeFileSync(file, FLANNEL);
    await again;
    assert.deepEqual(plugins(file).map((p) => p.type), ['flannel', 'portmap', PLUGIN_TYPE]);
  }));

test('a .conf written again beside the conflist made of it: the conflist is made again from the new .conf', () => {
  const conf = '{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"cni1","ipam":{"type":"host-local","subnet":"10.22.0.0/16"}}';
  return underWatcher('10-mynet.conf', conf, async (file, until, n) => {
    const rechained = until('rechained');
    writeFileSync(file, conf.replace('cni1', 'cni2'));
    assert.deepEqual(await rechained, { state: 'rechained', confFile: join(n.confDir, '10-mynet.conflist') });
    const list = JSON.parse(readFileSync(join(n.confDir, '10-mynet.conflist'), 'utf8')) as { plugins: { type: string; bridge?: string }[] };
    assert.deepEqual(list.plugins.map((p) => [p.type, p.bridge]), [['bridge', 'cni2'], [PLUGIN_TYPE, undefined]]);
  });
});

test('cni-uninstall under a running watcher: the entry stays removed', () =>
  underWatcher('10-flannel.conflist', FLANNEL, async (file, until, n) => {
    const uninstalled = until('uninstalled');
    uninstallPlugin(n);
    await uninstalled;
    // The main CNI writes again: still not chained.
    const checked = until('uninstalled');
    writeFileSync(file, FLANNEL);
    await checked;
    assert.equal(readFileSync(file, 'utf8'), FLANNEL);
  }));

test('a half-written configuration is left alone until its next write', () =>
  underWatcher('10-flannel.conflist', FLANNEL, async (file, until) => {
    const unreadable = until('unreadable');
    writeFileSync(file, FLANNEL.slice(0, 20));
    assert.match((await unreadable as Extract<ConfCheck, { state: 'unreadable' }>).reason, /not a CNI network configuration/);
    assert.equal(readFileSync(file, 'utf8'), FLANNEL.slice(0, 20), 'left as found');
    const rechained = until('rechained');
    writeFileSync(file, FLANNEL);
    await rechained;
    assert.deepEqual(plugins(file).map((p) => p.type), ['flannel', 'portmap', PLUGIN_TYPE]);
  }));
