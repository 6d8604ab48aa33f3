// charts/netpol-agent against manifests/: `helm template` with the defaults gives the objects of
// `kubectl kustomize manifests/`, with cni.enabled those of `kubectl kustomize manifests/cni/` (parsed
// objects compared, not text), and each option operators set changes what it names. helm and kubectl
// are built from the Go module proxy (scripts/build-helm.sh, test/e2e/cluster/build.sh; cached).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { CHART, REPO_ROOT, helmBinary, helmTemplate, kubectlBinary, objectId, parseObjects, type KubeObject } from '../support/chart-tools';

interface Container {
  name: string;
  image: string;
  args: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  resources?: unknown;
  livenessProbe: { httpGet: { host?: string; port: number | string } };
  readinessProbe: { httpGet: { host?: string; port: number | string } };
}
interface DaemonSetSpec {
  tolerations?: unknown[];
  initContainers?: Container[];
  containers: Container[];
}

let helm = '';
let kubectl = '';

before(() => {
  helm = helmBinary();
  kubectl = kubectlBinary();
});

function byId(objects: readonly KubeObject[], where: string): Map<string, KubeObject> {
  const map = new Map<string, KubeObject>();
  for (const o of objects) {
    assert.ok(!map.has(objectId(o)), `${where} renders ${objectId(o)} twice`);
    map.set(objectId(o), o);
  }
  return map;
}

function kustomize(dir: string): Map<string, KubeObject> {
  const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 120_000 });
  return byId(parseObjects(out, `kubectl kustomize ${dir}`), dir);
}

function chart(args: readonly string[] = []): Map<string, KubeObject> {
  return byId(parseObjects(helmTemplate(helm, args), `helm template ${args.join(' ')}`), 'the chart');
}

function podSpec(objects: Map<string, KubeObject>): DaemonSetSpec {
  const ds = objects.get('DaemonSet netpol-agent/netpol-agent') as { spec: { template: { spec: DaemonSetSpec } } } | undefined;
  assert.ok(ds !== undefined, 'the chart renders the DaemonSet netpol-agent/netpol-agent');
  return ds.spec.template.spec;
}

function agent(objects: Map<string, KubeObject>): Container {
  const container = podSpec(objects).containers.find((c) => c.name === 'agent');
  assert.ok(container !== undefined, 'the DaemonSet has the container agent');
  return container;
}

describe('the chart renders the objects of manifests/', () => {
  test('helm template with the defaults equals kubectl kustomize manifests/', () => {
    const expected = kustomize(join(REPO_ROOT, 'manifests'));
    const rendered = chart();
    assert.deepEqual([...rendered.keys()].sort(), [...expected.keys()].sort(), 'the same objects');
    for (const [id, object] of expected) assert.deepEqual(rendered.get(id), object, `${id}: the chart's (actual) differs from kustomize's (expected)`);
  });

  test('helm template with cni.enabled equals kubectl kustomize manifests/cni/', () => {
    const expected = kustomize(join(REPO_ROOT, 'manifests', 'cni'));
    const rendered = chart(['--set', 'cni.enabled=true']);
    assert.deepEqual([...rendered.keys()].sort(), [...expected.keys()].sort(), 'the same objects');
    for (const [id, object] of expected) assert.deepEqual(rendered.get(id), object, `${id}: the chart's (actual) differs from kustomize's (expected)`);
  });

  test('the port named metrics (what the PodMonitor scrapes) is the listener the probes reach', () => {
    const c = agent(kustomize(join(REPO_ROOT, 'manifests')));
    const metrics = c.ports?.find((p) => p.name === 'metrics');
    assert.ok(metrics !== undefined, 'the agent container names a port metrics');
    assert.equal(c.readinessProbe.httpGet.port, 'metrics');
    assert.equal(c.livenessProbe.httpGet.port, 'metrics');
    assert.ok(c.args.includes(`--metrics-listen=$(HOST_IP):${metrics.containerPort}`), c.args.join(' '));
  });

  test('helm lint finds nothing wrong', () => {
    execFileSync(helm, ['lint', '--strict', CHART], { encoding: 'utf8', timeout: 120_000 });
  });
});

describe('each option changes what it names', () => {
  test('image: repository and tag, for the agent and the CNI installer', () => {
    const objects = chart(['--set', 'image.repository=registry.example/netpol-agent,image.tag=9.9.9,image.pullPolicy=Always,cni.enabled=true']);
    for (const c of [...podSpec(objects).containers, ...(podSpec(objects).initContainers ?? [])]) {
      assert.equal(c.image, 'registry.example/netpol-agent:9.9.9', c.name);
      assert.equal((c as Container & { imagePullPolicy: string }).imagePullPolicy, 'Always', c.name);
    }
  });

  test('resources override the defaults field by field (helm merges values; null removes one)', () => {
    const resources = { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '2Gi', cpu: null } };
    assert.deepEqual(agent(chart(['--set-json', `resources=${JSON.stringify(resources)}`])).resources, { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '2Gi' } });
  });

  test('metrics.onNodeAddress=false with metrics.host and metrics.port: the listener, the named port and both probes', () => {
    const c = agent(chart(['--set', 'metrics.onNodeAddress=false,metrics.host=127.0.0.2,metrics.port=9100']));
    assert.ok(c.args.includes('--metrics-listen=127.0.0.2:9100'), c.args.join(' '));
    assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 9100, protocol: 'TCP' }]);
    for (const probe of [c.livenessProbe, c.readinessProbe]) assert.deepEqual([probe.httpGet.host, probe.httpGet.port], ['127.0.0.2', 'metrics']);
  });

  test('metrics.onNodeAddress (the default): listens on status.hostIP and probes it (no probe host: the pod IP, the node\'s)', () => {
    const c = agent(chart());
    assert.ok(c.args.includes('--metrics-listen=$(HOST_IP):9977'), c.args.join(' '));
    assert.equal(c.env?.find((e) => e.name === 'HOST_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
    for (const probe of [c.livenessProbe, c.readinessProbe]) assert.equal(probe.httpGet.host, undefined);
  });

  test('cni.failurePolicy and the host directories reach the installer and the volumes', () => {
    const objects = chart(['--set', 'cni.enabled=true,cni.failurePolicy=fail-open,cni.binDir=/usr/lib/cni,cni.timeoutMs=5000']);
    const install = podSpec(objects).initContainers?.find((c) => c.name === 'install-cni');
    assert.ok(install !== undefined, 'the installer runs');
    assert.ok(install.args.includes('--failure-policy=fail-open'), install.args.join(' '));
    assert.ok(install.args.includes('--timeout=5000'), install.args.join(' '));
    const volumes = (podSpec(objects) as DaemonSetSpec & { volumes: { name: string; hostPath: { path: string } }[] }).volumes;
    assert.equal(volumes.find((v) => v.name === 'cni-bin')?.hostPath.path, '/usr/lib/cni');
    assert.ok(agent(objects).args.includes('--cni-socket=/run/netpol-agent/cni.sock'));
  });

  test('cni.enabled=false (the default) renders no installer, no host volume and no --cni-socket', () => {
    const objects = chart();
    assert.equal(podSpec(objects).initContainers, undefined);
    assert.deepEqual((podSpec(objects) as DaemonSetSpec & { volumes?: unknown }).volumes, [{ name: 'run', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }]);
    assert.ok(!agent(objects).args.some((a) => a.startsWith('--cni-socket')));
  });

  test('audit, drop logging and extra arguments become flags of run', () => {
    assert.ok(agent(chart(['--set', 'audit=true'])).args.includes('--audit'));
    assert.ok(agent(chart(['--set', 'dropLog.enabled=false'])).args.includes('--no-drop-log'));
    const tuned = agent(chart(['--set', 'dropLog.group=7,dropLog.rate=20,dropLog.window=10s', '--set-json', 'extraArgs=["--resync-period=10m"]'])).args;
    for (const flag of ['--drop-log-group=7', '--drop-log-rate=20', '--drop-log-window=10s', '--resync-period=10m']) assert.ok(tuned.includes(flag), `${flag} in ${tuned.join(' ')}`);
    assert.ok(!agent(chart()).args.some((a) => a === '--audit' || a.startsWith('--drop-log') || a === '--no-drop-log'), 'the defaults add none');
  });

  test('extraTolerations are added to the tolerate-everything default, or replace it', () => {
    const extra = { key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' };
    assert.deepEqual(podSpec(chart(['--set-json', `extraTolerations=[${JSON.stringify(extra)}]`])).tolerations, [{ operator: 'Exists' }, extra]);
    assert.deepEqual(podSpec(chart(['--set', 'tolerateAllTaints=false', '--set-json', `extraTolerations=[${JSON.stringify(extra)}]`])).tolerations, [extra]);
  });

  test('createNamespace=false leaves the Namespace out', () => {
    assert.equal(chart(['--set', 'createNamespace=false']).has('Namespace /netpol-agent'), false);
    assert.equal(chart().has('Namespace /netpol-agent'), true);
  });
});
