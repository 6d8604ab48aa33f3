// The container image, built for real (root, slow: minutes from empty caches): the Dockerfile through
// scripts/image/build.sh on a private Docker daemon, then the image itself run with only NET_ADMIN in a
// network namespace of its own (docker --network=none), as the DaemonSet runs it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const SCRIPTS = join(ROOT, 'scripts/image');
const DOCKER = '/usr/bin/docker';
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
// A tag and container names of this run only, so that parallel runs never collide.
const RUN_ID = `t${process.pid}`;
const IMAGE = `netpol-agent:${RUN_ID}`;

const missing = process.getuid?.() !== 0 ? 'needs root'
  : !existsSync(DOCKER) || !existsSync('/usr/sbin/dockerd') ? 'needs Debian\'s docker.io (apt-get install docker.io)'
    : !existsSync('/usr/sbin/debootstrap') ? 'needs debootstrap (apt-get install debootstrap)' : undefined;
const opts = missing !== undefined ? { skip: missing } : {};

let daemon = '';
let archive = '';
let buildError: string | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'netpol-image-'));

function docker(args: string[], timeoutMs = 120_000): SpawnSyncReturns<string> {
  return spawnSync(DOCKER, ['-H', `unix://${daemon}/docker.sock`, ...args], { encoding: 'utf8', timeout: timeoutMs });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

before(() => {
  if (missing !== undefined) return;
  const started = spawnSync('bash', [join(SCRIPTS, 'dockerd.sh'), 'start'], { encoding: 'utf8' });
  if (started.status !== 0) { buildError = `dockerd.sh start failed: ${started.stderr}`; return; }
  daemon = started.stdout.trim();
  const built = spawnSync('bash', [join(SCRIPTS, 'build.sh'), '--tag', RUN_ID, '--daemon', daemon], { encoding: 'utf8', timeout: 30 * 60_000 });
  process.stderr.write(built.stderr);
  if (built.status !== 0) { buildError = `build.sh failed (exit ${built.status}): ${built.stderr}`; return; }
  archive = built.stdout.trim();
});

after(() => {
  if (daemon !== '') {
    docker(['rm', '-f', `netpol-image-${RUN_ID}`]);
    docker(['rmi', IMAGE]);
    spawnSync('bash', [join(SCRIPTS, 'dockerd.sh'), 'stop', daemon], { stdio: 'inherit' });
  }
  if (archive !== '') rmSync(archive, { force: true });
  rmSync(join(ROOT, '.cache/image', `build-${RUN_ID}.log`), { force: true });
  rmSync(scratch, { recursive: true, force: true });
});

test('the Dockerfile builds with BuildKit and saves as an archive that containerd can import', opts, (t) => {
  assert.equal(buildError, undefined);
  const manifest = JSON.parse(ok(spawnSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' }), 'tar manifest.json')) as { RepoTags: string[]; Layers: string[] }[];
  assert.deepEqual(manifest.map((m) => m.RepoTags), [[IMAGE]]);
  const size = Number(ok(docker(['image', 'inspect', '--format', '{{.Size}}', IMAGE]), 'inspect').trim());
  t.diagnostic(`image ${IMAGE}: ${(size / 1e6).toFixed(0)} MB, ${manifest[0].Layers.length} layers`);
  const config = JSON.parse(ok(docker(['image', 'inspect', '--format', '{{json .Config}}', IMAGE]), 'inspect')) as { Entrypoint: string[]; User: string; Env: string[] };
  assert.deepEqual(config.Entrypoint, ['netpol-agent']);
  assert.ok(config.Env.every((e) => !e.startsWith('NODE_EXTRA_CA_CERTS=')), 'no CA settings in the runtime image');
});

test('the runtime image holds Node 20 and libnftables, and no compiler, npm cache, sources or build CA', opts, () => {
  assert.equal(buildError, undefined);
  const script = [
    'node --version',
    'test -e /usr/lib/x86_64-linux-gnu/libnftables.so.1',
    'for f in /usr/bin/gcc /usr/bin/cc /usr/bin/g++ /usr/bin/make /usr/local/go /usr/include/nftables /root/.npm /opt/netpol-agent/src /opt/netpol-agent/native/src /opt/netpol-agent/cni-plugin/vendor /run/secrets/extra-ca; do if test -e $f; then echo "unexpected $f"; exit 1; fi; done',
    // The dev dependencies are pruned (@types/node stays: @kubernetes/client-node depends on it).
    'test ! -e /opt/netpol-agent/node_modules/typescript',
  ].join(' && ');
  const out = ok(docker(['run', '--rm', '--network=none', '--entrypoint', 'sh', IMAGE, '-c', script]), 'runtime contents');
  assert.match(out, /^v20\./);
  // The proxy's CA certificates reached the build as a secret only: no file in the image holds them.
  const caFiles = spawnSync('sh', ['-c', 'ls /usr/local/share/ca-certificates/*.crt 2>/dev/null'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const file of caFiles) {
    const line = readFileSync(file, 'utf8').split('\n').find((l) => /^[A-Za-z0-9+/]{60,}$/.test(l));
    if (line === undefined) continue;
    const r = docker(['run', '--rm', '--network=none', '--entrypoint', 'grep', IMAGE, '-rlF', line, '/etc', '/usr/local', '/opt', '/root', '/usr/share/ca-certificates']);
    assert.equal(r.stdout, '', `${file} found in the image`);
  }
});

test('netpol-agent --version prints the package version', opts, () => {
  assert.equal(buildError, undefined);
  assert.match(ok(docker(['run', '--rm', '--network=none', IMAGE, '--version']), '--version'), new RegExp(`^${VERSION.replace(/\./g, '\\.')}\\s*$`));
});

function programsNftables(user: string, caps: string[]): SpawnSyncReturns<string> {
  const program = `const { NftContext } = require('/opt/netpol-agent/node_modules/nftables-napi');
    const ctx = new NftContext();
    ctx.runSync('add table inet netpol_image_check\\ndelete table inet netpol_image_check');
    console.log('programmed');`;
  return docker(['run', '--rm', '--network=none', '--user', user, '--cap-drop=ALL', ...caps.map((c) => `--cap-add=${c}`),
    '--security-opt=no-new-privileges', '--entrypoint', 'node', IMAGE, '-e', program]);
}

test('exactly NET_ADMIN, as root: without it nftables is refused, and a non-root user cannot use it', opts, () => {
  assert.equal(buildError, undefined);
  // Each container has its own network namespace (--network=none): the table never reaches the host.
  const root = programsNftables('0', ['NET_ADMIN']);
  assert.equal(root.status, 0, root.stderr);
  assert.match(root.stdout, /programmed/);
  const noCaps = programsNftables('0', []);
  assert.notEqual(noCaps.status, 0);
  assert.match(noCaps.stderr, /Operation not permitted/);
  const nonRoot = programsNftables('1000', ['NET_ADMIN']);
  assert.notEqual(nonRoot.status, 0, 'if a non-root user can program nftables, run the DaemonSet as non-root');
  assert.match(nonRoot.stderr, /Operation not permitted/);
});

test('run on a file datastore, with only NET_ADMIN and a read-only root, answers /readyz and `netpol-agent rules`', opts, async () => {
  assert.equal(buildError, undefined);
  const datastore = join(scratch, 'cluster.yaml');
  writeFileSync(datastore, ['cluster.yaml', 'nginx-policy.yaml'].map((f) => readFileSync(join(ROOT, 'examples/access-nginx', f), 'utf8')).join('\n---\n'));
  const name = `netpol-image-${RUN_ID}`;
  ok(docker(['run', '-d', '--name', name, '--network=none', '--cap-drop=ALL', '--cap-add=NET_ADMIN', '--read-only',
    // The DaemonSet's emptyDir for the debug socket, on the read-only root.
    '--tmpfs', '/run/netpol-agent:mode=0700',
    '--security-opt=no-new-privileges', '-v', `${scratch}:/data:ro`, IMAGE,
    'run', '--datastore-file', '/data/cluster.yaml', '--node-name', 'node-1']), 'docker run');
  const readyz = `fetch('http://127.0.0.1:9977/readyz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(2))`;
  const deadline = Date.now() + 60_000;
  let ready = false;
  while (!ready && Date.now() < deadline) {
    ready = docker(['exec', name, 'node', '-e', readyz]).status === 0;
    if (!ready) await new Promise((r) => setTimeout(r, 1000));
  }
  const logs = docker(['logs', name]);
  assert.ok(ready, `/readyz never answered 200 within 60 s; logs:\n${logs.stdout}${logs.stderr}`);
  // As the README has it: `kubectl exec POD -- netpol-agent rules`, over the debug socket.
  const rules = ok(docker(['exec', name, 'netpol-agent', 'rules']), 'netpol-agent rules');
  assert.match(rules, /access-nginx/);
  ok(docker(['stop', name]), 'docker stop');
});

test('the image carries the static CNI plugin of the Go stage, which cni-install copies and chains, and which runs without Node', opts, () => {
  assert.equal(buildError, undefined);
  // The stage list of the build: the plugin is built in the Go stage, from the golang image.
  const buildLog = readFileSync(join(ROOT, '.cache/image', `build-${RUN_ID}.log`), 'utf8');
  assert.match(buildLog, /\[plugin 1\/\d+\] FROM docker\.io\/library\/golang:1\.26-bookworm/);
  assert.match(buildLog, /\[plugin \d+\/\d+\] RUN CGO_ENABLED=0 .*go build/);
  const script = [
    'mkdir -p /tmp/net.d /tmp/bin',
    'echo \'{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}\' > /tmp/net.d/10-bridge.conflist',
    'netpol-agent cni-install --conf-dir /tmp/net.d --bin-dir /tmp/bin',
    'cat /tmp/net.d/10-bridge.conflist',
    // Static: it runs on a host with no libc of the image's and no Node.js.
    'echo \'{"cniVersion":"1.0.0"}\' | env -i CNI_COMMAND=VERSION /tmp/bin/netpol-agent-cni',
    'echo',
  ].join(' && ');
  const out = ok(docker(['run', '--rm', '--network=none', '--entrypoint', 'sh', IMAGE, '-c', script]), 'cni-install in the image');
  assert.match(out, /"type": "netpol-agent-cni"/);
  assert.match(out, /"supportedVersions":\["0\.3\.0","0\.3\.1","0\.4\.0","1\.0\.0","1\.1\.0"\]/);
  const ldd = docker(['run', '--rm', '--network=none', '--entrypoint', 'sh', IMAGE, '-c', 'ldd /opt/netpol-agent/cni-plugin/build/netpol-agent-cni 2>&1 || true']);
  assert.match(ldd.stdout, /not a dynamic executable|statically linked/);
});
