// manifests/cni/: the base DaemonSet patched with the CNI installer, read as kustomize would build it
// (the JSON patch applied here), and the uninstall DaemonSet. The installer and the agent agree on the
// socket, the host directories are the ones the uninstaller cleans, and nothing gains a capability.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

const MANIFESTS = resolve(__dirname, '../../../manifests');

interface Container {
  name: string;
  args?: string[];
  command?: string[];
  volumeMounts?: { name: string; mountPath: string }[];
  securityContext?: { capabilities?: { add?: string[]; drop?: string[] }; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean };
}
interface PodSpec {
  hostNetwork?: boolean;
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string; type?: string } }[];
}
interface DaemonSet { kind: string; metadata: { name: string }; spec: { template: { spec: PodSpec } } }
interface PatchOp { op: string; path: string; value: unknown }

/** RFC 6902 "add" (a "-" index appends) and "replace" (of what the base has), which is all the patch uses. */
function applyOp(doc: unknown, op: PatchOp): void {
  assert.ok(op.op === 'add' || op.op === 'replace', `${op.path}: ${op.op}`);
  const parts = op.path.split('/').slice(1);
  const last = parts.pop() ?? '';
  let target = doc as Record<string, unknown>;
  for (const p of parts) target = target[p] as Record<string, unknown>;
  assert.ok(target !== undefined, `${op.path}: the parent exists in the base`);
  if (op.op === 'replace') {
    assert.notEqual(Array.isArray(target) ? target[Number(last)] : target[last], undefined, `${op.path}: replace finds what the base has`);
    if (Array.isArray(target)) target[Number(last)] = op.value;
    else target[last] = op.value;
  } else if (Array.isArray(target)) {
    if (last === '-') target.push(op.value);
    else target.splice(Number(last), 0, op.value);
  } else {
    assert.equal(target[last], undefined, `${op.path}: add does not replace what the base has`);
    target[last] = op.value;
  }
}

function readDocs(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as unknown);
}

const kustomization = parse(readFileSync(join(MANIFESTS, 'cni/kustomization.yaml'), 'utf8')) as { resources: string[]; patches: { path: string; target: { kind: string; name: string } }[] };
const base = readDocs(join(MANIFESTS, 'base', 'daemonset.yaml'))[0] as DaemonSet;
const patched = structuredClone(base);
for (const p of kustomization.patches) {
  assert.equal(p.target.kind, 'DaemonSet');
  assert.equal(p.target.name, base.metadata.name);
  for (const op of parse(readFileSync(join(MANIFESTS, 'cni', p.path), 'utf8')) as PatchOp[]) applyOp(patched, op);
}
const pod = patched.spec.template.spec;
const [install] = pod.initContainers ?? [];
const agent = pod.containers[0];
const flag = (c: Container | undefined, name: string): string | undefined => c?.args?.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const hostPathOf = (spec: PodSpec, c: Container | undefined, mountPath: string): string | undefined => {
  const mount = c?.volumeMounts?.find((m) => m.mountPath === mountPath);
  return spec.volumes?.find((v) => v.name === mount?.name)?.hostPath?.path;
};

test('the overlay builds on the base install and patches only its DaemonSet', () => {
  assert.deepEqual(kustomization.resources, ['../base']);
  assert.equal(pod.containers.length, 1);
  assert.equal(agent?.args?.[0], 'run');
});

test('the init container installs the plugin into the host\'s CNI directories', () => {
  assert.equal(install?.args?.[0], 'cni-install');
  assert.equal(hostPathOf(pod, install, flag(install, 'conf-dir') ?? ''), '/etc/cni/net.d');
  assert.equal(hostPathOf(pod, install, flag(install, 'bin-dir') ?? ''), '/opt/cni/bin');
  assert.equal(flag(install, 'failure-policy'), 'fail-closed', 'the documented default');
});

test('the plugin is told the socket the agent listens on, and the host sees it where the plugin looks', () => {
  const socket = flag(agent, 'cni-socket');
  assert.equal(socket, flag(install, 'socket-path'));
  assert.equal(socket, '/run/netpol-agent/cni.sock');
  assert.equal(hostPathOf(pod, agent, '/run/netpol-agent'), '/run/netpol-agent', 'the same path on the host, where the runtime runs the plugin');
});

test('the agent watches the host\'s CNI configuration directory the installer chained the plugin into', () => {
  assert.equal(hostPathOf(pod, agent, flag(agent, 'cni-conf-dir') ?? ''), hostPathOf(pod, install, flag(install, 'conf-dir') ?? ''));
  assert.equal(hostPathOf(pod, agent, flag(agent, 'cni-conf-dir') ?? ''), '/etc/cni/net.d');
});

test('no container gains a capability: the installer has none, the agent keeps only NET_ADMIN', () => {
  assert.deepEqual(install?.securityContext?.capabilities, { drop: ['ALL'] });
  assert.equal(install?.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(install?.securityContext?.readOnlyRootFilesystem, true);
  assert.deepEqual(agent?.securityContext?.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
});

test('the uninstall DaemonSet cleans the directories the installer wrote, on every node, outside the CNI', () => {
  const ds = readDocs(join(MANIFESTS, 'cni/uninstall.yaml'))[0] as DaemonSet;
  const spec = ds.spec.template.spec;
  const [un] = spec.initContainers ?? [];
  assert.equal(un?.args?.[0], 'cni-uninstall');
  assert.equal(hostPathOf(spec, un, flag(un, 'conf-dir') ?? ''), hostPathOf(pod, install, flag(install, 'conf-dir') ?? ''));
  assert.equal(hostPathOf(spec, un, flag(un, 'bin-dir') ?? ''), hostPathOf(pod, install, flag(install, 'bin-dir') ?? ''));
  assert.equal(spec.hostNetwork, true, 'it must start on a node whose plugin holds every pod');
  assert.deepEqual(un?.securityContext?.capabilities, { drop: ['ALL'] });
});
