// `netpol-agent cni-install` / `cni-uninstall` on the conflists of bridge, ptp (kindnet) and flannel, and
// on a single-plugin .conf: the entry goes last, a second install changes nothing, other plugins are
// kept as they are, and uninstall gives back the original bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ORIGINAL_SUFFIX, PLUGIN_TYPE, UNINSTALL_MARKER, activeConfFile, installPlugin, uninstallPlugin } from '../../src/cni';

const CLI = resolve(__dirname, '../../../bin/netpol-agent');

// As the main CNIs write them (formatting kept as found: tabs, 4 spaces, compact).
const SAMPLES: Record<string, { file: string; text: string }> = {
  bridge: {
    file: '10-containerd-net.conflist',
    text: '{\n\t"cniVersion": "1.0.0",\n\t"name": "containerd-net",\n\t"plugins": [\n\t\t{\n\t\t\t"type": "bridge",\n\t\t\t"bridge": "cni0",\n\t\t\t"isGateway": true,\n\t\t\t"ipMasq": true,\n\t\t\t"promiscMode": true,\n\t\t\t"ipam": {\n\t\t\t\t"type": "host-local",\n\t\t\t\t"ranges": [[{ "subnet": "10.244.0.0/24" }]],\n\t\t\t\t"routes": [{ "dst": "0.0.0.0/0" }]\n\t\t\t}\n\t\t},\n\t\t{\n\t\t\t"type": "portmap",\n\t\t\t"capabilities": { "portMappings": true }\n\t\t}\n\t]\n}\n',
  },
  ptp: {
    file: '10-kindnet.conflist',
    text: '{\n    "cniVersion": "0.3.1",\n    "name": "kindnet",\n    "plugins": [\n        {\n            "type": "ptp",\n            "ipMasq": false,\n            "ipam": {\n                "type": "host-local",\n                "dataDir": "/run/cni-ipam-state",\n                "routes": [{ "dst": "0.0.0.0/0" }],\n                "ranges": [[{ "subnet": "10.244.1.0/24" }]]\n            },\n            "mtu": 1500\n        },\n        {\n            "type": "portmap",\n            "capabilities": { "portMappings": true }\n        }\n    ]\n}\n',
  },
  flannel: {
    file: '10-flannel.conflist',
    text: '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}',
  },
};

const SETTINGS = { socketPath: '/run/netpol-agent/cni.sock', timeoutMs: 10_000, failurePolicy: 'fail-closed' as const };

function node(sample?: { file: string; text: string }) {
  const root = mkdtempSync(join(tmpdir(), 'netpol-cni-install-'));
  const confDir = join(root, 'net.d');
  const binDir = join(root, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'bridge'), 'other plugin');
  // A later file the runtime does not use, which must stay untouched.
  writeFileSync(join(confDir, '99-loopback.conf'), '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}');
  if (sample !== undefined) writeFileSync(join(confDir, sample.file), sample.text);
  const pluginBinary = join(root, 'netpol-agent-cni');
  writeFileSync(pluginBinary, 'plugin v1');
  return { root, confDir, binDir, pluginBinary, opts: { confDir, binDir, pluginBinary, ...SETTINGS }, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

type Conf = { cniVersion: string; plugins: { type: string }[] };

for (const [kind, sample] of Object.entries(SAMPLES)) {
  test(`${kind}: installed last in the chain, idempotent, other plugins kept, uninstall restores the original bytes`, () => {
    const n = node(sample);
    try {
      const file = join(n.confDir, sample.file);
      const original = JSON.parse(sample.text) as Conf;
      const first = installPlugin(n.opts);
      assert.deepEqual(first, { confFile: file, confChanged: true, binaryChanged: true });
      const installed = JSON.parse(readFileSync(file, 'utf8')) as Conf;
      assert.deepEqual(installed.plugins.slice(0, -1), original.plugins, 'the other plugins unchanged and in order');
      assert.deepEqual(installed.plugins.at(-1), { type: PLUGIN_TYPE, ...SETTINGS });
      assert.equal(installed.cniVersion, original.cniVersion);
      const bin = join(n.binDir, PLUGIN_TYPE);
      assert.equal(readFileSync(bin, 'utf8'), 'plugin v1');
      assert.equal(statSync(bin).mode & 0o777, 0o755);

      const bytes = readFileSync(file);
      const mtime = statSync(file).mtimeMs;
      assert.deepEqual(installPlugin(n.opts), { confFile: file, confChanged: false, binaryChanged: false });
      assert.ok(readFileSync(file).equals(bytes));
      assert.equal(statSync(file).mtimeMs, mtime, 'not rewritten (the runtime would reload it)');

      // New settings and a new binary: the entry is updated in place, never duplicated.
      writeFileSync(n.pluginBinary, 'plugin v2');
      assert.equal(installPlugin({ ...n.opts, failurePolicy: 'fail-open' }).binaryChanged, true);
      const updated = JSON.parse(readFileSync(file, 'utf8')) as { plugins: { type: string; failurePolicy?: string }[] };
      assert.equal(updated.plugins.filter((p) => p.type === PLUGIN_TYPE).length, 1);
      assert.equal(updated.plugins.at(-1)?.failurePolicy, 'fail-open');

      assert.deepEqual(uninstallPlugin(n), { confFiles: [file], binaryRemoved: true });
      assert.equal(readFileSync(file, 'utf8'), sample.text, 'the original bytes');
      assert.equal(existsSync(bin), false);
      assert.equal(readFileSync(join(n.binDir, 'bridge'), 'utf8'), 'other plugin');
      // The marker tells the running agent not to chain the plugin again; libcni reads no dotfile.
      assert.deepEqual(readdirSync(n.confDir).sort(), [sample.file, '99-loopback.conf', UNINSTALL_MARKER].sort(), 'no backup or temporary file left');
      assert.deepEqual(uninstallPlugin(n), { confFiles: [], binaryRemoved: false }, 'a second uninstall does nothing');
      installPlugin(n.opts);
      assert.equal(existsSync(join(n.confDir, UNINSTALL_MARKER)), false, 'a new install takes the marker away');
    } finally {
      n.cleanup();
    }
  });
}

test('a conflist changed by someone else since install: uninstall removes only our entry and keeps the change', () => {
  const n = node(SAMPLES['flannel']);
  try {
    installPlugin(n.opts);
    const file = join(n.confDir, SAMPLES['flannel']?.file ?? '');
    const conf = JSON.parse(readFileSync(file, 'utf8')) as Conf & { name: string };
    conf.plugins.splice(1, 0, { type: 'bandwidth' });
    writeFileSync(file, JSON.stringify(conf));
    uninstallPlugin(n);
    const after = JSON.parse(readFileSync(file, 'utf8')) as Conf;
    assert.deepEqual(after.plugins.map((p) => p.type), ['flannel', 'bandwidth', 'portmap']);
    assert.equal(existsSync(`${file}${ORIGINAL_SUFFIX}`), false);
  } finally {
    n.cleanup();
  }
});

test('a single-plugin .conf becomes a conflist of the same name, and comes back on uninstall', () => {
  const text = '{\n  "cniVersion": "0.4.0",\n  "name": "mynet",\n  "type": "bridge",\n  "bridge": "cni0",\n  "ipam": { "type": "host-local", "subnet": "10.22.0.0/16" }\n}\n';
  const n = node({ file: '10-mynet.conf', text });
  try {
    const r = installPlugin(n.opts);
    const conflist = join(n.confDir, '10-mynet.conflist');
    assert.equal(r.confFile, conflist);
    assert.equal(activeConfFile(n.confDir), conflist, 'the runtime now reads the conflist');
    const conf = JSON.parse(readFileSync(conflist, 'utf8')) as Conf & { name: string };
    assert.deepEqual({ cniVersion: conf.cniVersion, name: conf.name, types: conf.plugins.map((p) => p.type) }, { cniVersion: '0.4.0', name: 'mynet', types: ['bridge', PLUGIN_TYPE] });
    assert.equal(installPlugin(n.opts).confChanged, false);
    uninstallPlugin(n);
    assert.equal(readFileSync(join(n.confDir, '10-mynet.conf'), 'utf8'), text);
    assert.deepEqual(readdirSync(n.confDir).sort(), ['10-mynet.conf', '99-loopback.conf', UNINSTALL_MARKER].sort());
  } finally {
    n.cleanup();
  }
});

test('refused with a clear message: no configuration yet, a cniVersion without prevResult, invalid JSON', () => {
  const empty = node();
  try {
    rmSync(join(empty.confDir, '99-loopback.conf'));
    assert.throws(() => installPlugin(empty.opts), /holds no CNI network configuration/);
  } finally {
    empty.cleanup();
  }
  const old = node({ file: '10-old.conflist', text: '{"cniVersion":"0.2.0","name":"x","plugins":[{"type":"bridge"}]}' });
  try {
    assert.throws(() => installPlugin(old.opts), /10-old\.conflist: cniVersion 0\.2\.0 has no prevResult/);
  } finally {
    old.cleanup();
  }
  const bad = node({ file: '10-bad.conflist', text: '{"cniVersion":' });
  try {
    assert.throws(() => installPlugin(bad.opts), /10-bad\.conflist: not a CNI network configuration/);
    assert.equal(readFileSync(join(bad.confDir, '10-bad.conflist'), 'utf8'), '{"cniVersion":', 'left as found');
  } finally {
    bad.cleanup();
  }
});

test('the command line: cni-install then cni-uninstall, exit 2 when there is nothing to chain into', () => {
  const n = node(SAMPLES['bridge']);
  try {
    const args = ['--conf-dir', n.confDir, '--bin-dir', n.binDir];
    const inst = spawnSync(CLI, ['cni-install', ...args, '--plugin', n.pluginBinary, '--failure-policy', 'fail-open', '--timeout', '3000'], { encoding: 'utf8' });
    assert.equal(inst.status, 0, inst.stderr);
    assert.match(inst.stdout, /chained in .*10-containerd-net\.conflist/);
    const conf = JSON.parse(readFileSync(join(n.confDir, '10-containerd-net.conflist'), 'utf8')) as { plugins: Record<string, unknown>[] };
    assert.deepEqual(conf.plugins.at(-1), { type: PLUGIN_TYPE, socketPath: '/run/netpol-agent/cni.sock', timeoutMs: 3000, failurePolicy: 'fail-open' });
    const un = spawnSync(CLI, ['cni-uninstall', ...args], { encoding: 'utf8' });
    assert.equal(un.status, 0, un.stderr);
    assert.equal(readFileSync(join(n.confDir, '10-containerd-net.conflist'), 'utf8'), SAMPLES['bridge']?.text);
    rmSync(join(n.confDir, '10-containerd-net.conflist'));
    rmSync(join(n.confDir, '99-loopback.conf'));
    const none = spawnSync(CLI, ['cni-install', ...args, '--plugin', n.pluginBinary], { encoding: 'utf8' });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /holds no CNI network configuration/);
  } finally {
    n.cleanup();
  }
});
