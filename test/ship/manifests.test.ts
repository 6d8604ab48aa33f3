// The install manifests (manifests/, `kubectl apply -k manifests/`) read as the API server would get them:
// least privilege for the ClusterRole and the DaemonSet, and the walkthrough examples matching the docs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

const ROOT = resolve(__dirname, '../../..');
const MANIFESTS = join(ROOT, 'manifests');

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

function readYaml(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as unknown;
  }).filter((o) => o !== null);
}

interface Kustomization { resources: string[]; images?: { name: string; newName?: string; newTag?: string }[] }

function kustomize(dir: string): { kustomization: Kustomization; objects: KubeObject[] } {
  const [kustomization] = readYaml(join(dir, 'kustomization.yaml')) as Kustomization[];
  const objects = kustomization.resources.flatMap((r) => readYaml(join(dir, r)) as KubeObject[]);
  return { kustomization, objects };
}

function only(objects: KubeObject[], kind: string): KubeObject {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0];
}

// manifests/ is the base (manifests/base/) and nothing else; manifests/cni/ builds on the same base.
const top = readYaml(join(MANIFESTS, 'kustomization.yaml'))[0] as Kustomization;
const install = kustomize(join(MANIFESTS, 'base'));

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: Record<string, unknown> & { capabilities?: { add?: string[]; drop?: string[] } };
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  livenessProbe?: { httpGet?: { host?: string; path: string; port: number | string } };
  readinessProbe?: { httpGet?: { host?: string; path: string; port: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  securityContext?: Record<string, unknown>;
  volumes?: ({ name: string } & Record<string, unknown>)[];
  containers: Container[];
  initContainers?: Container[];
}
interface DaemonSet extends KubeObject {
  spec: { updateStrategy?: { type?: string }; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

const daemonSet = only(install.objects, 'DaemonSet') as DaemonSet;
const pod = daemonSet.spec.template.spec;
const agent = pod.containers[0];

test('kustomization.yaml installs every manifest in manifests/', () => {
  assert.deepEqual(top.resources, ['base']);
  assert.equal(top.images, undefined, 'the image tag is set once, in base/ (manifests/cni/ builds on base/ too)');
  const files = readdirSync(join(MANIFESTS, 'base')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...install.kustomization.resources].sort(), files);
  assert.deepEqual(install.objects.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Namespace', 'ServiceAccount']);
});

test('the ClusterRole grants exactly get/list/watch on pods, namespaces and networkpolicies', () => {
  const role = only(install.objects, 'ClusterRole') as KubeObject & { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }[] };
  const granted = role.rules.flatMap((rule) => {
    assert.equal(rule.nonResourceURLs, undefined);
    assert.deepEqual([...rule.verbs].sort(), ['get', 'list', 'watch'], `verbs of ${rule.resources.join(',')}`);
    return rule.apiGroups.flatMap((group) => rule.resources.map((resource) => `${group}/${resource}`));
  });
  assert.deepEqual(granted.sort(), ['/namespaces', '/pods', 'networking.k8s.io/networkpolicies']);
  assert.equal(install.objects.some((o) => o.kind === 'Role' || o.kind === 'RoleBinding'), false, 'no other grants');
});

test('the binding gives that role to the DaemonSet\'s service account, in the agent\'s namespace', () => {
  const namespace = only(install.objects, 'Namespace').metadata.name;
  const account = only(install.objects, 'ServiceAccount');
  const binding = only(install.objects, 'ClusterRoleBinding') as KubeObject & { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] };
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: only(install.objects, 'ClusterRole').metadata.name });
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: account.metadata.name, namespace }]);
  assert.equal(account.metadata.namespace, namespace);
  assert.equal(daemonSet.metadata.namespace, namespace);
  assert.equal(pod.serviceAccountName, account.metadata.name);
  // hostNetwork and NET_ADMIN are outside the baseline Pod Security level.
  assert.equal(only(install.objects, 'Namespace').metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
});

test('the DaemonSet is not privileged: only NET_ADMIN, no escalation, read-only root, nothing from the host but its network', () => {
  assert.equal(pod.containers.length, 1);
  assert.equal(pod.initContainers, undefined);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID ?? false, false);
  assert.equal(pod.hostIPC ?? false, false);
  // One emptyDir for the debug socket's directory (the root filesystem is read-only), nothing from the host.
  assert.deepEqual(pod.volumes, [{ name: 'run', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }], 'no hostPath');
  assert.deepEqual(agent.volumeMounts, [{ name: 'run', mountPath: '/run/netpol-agent' }]);
  const sc = agent.securityContext ?? {};
  assert.equal(sc.privileged, false);
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
  assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
  // Root is needed (see test/ship/image.test.ts): said explicitly rather than left to the image.
  assert.equal(sc.runAsUser, 0);
  assert.equal(pod.securityContext, undefined, 'nothing at pod level to override the container\'s');
});

test('NODE_NAME comes from the downward API', () => {
  const nodeName = agent.env?.find((e) => e.name === 'NODE_NAME');
  assert.deepEqual(nodeName?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
});

test('liveness and readiness probe /healthz and /readyz on the metrics port; the debug endpoints are on a socket in the emptyDir', () => {
  const flag = (name: string): string | undefined => agent.args?.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
  assert.equal(flag('--metrics-listen'), '$(HOST_IP):9977', 'the node address, to be scraped');
  assert.deepEqual(agent.env?.find((e) => e.name === 'HOST_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.hostIP' } });
  assert.deepEqual(agent.ports, [{ name: 'metrics', containerPort: 9977, protocol: 'TCP' }]);
  assert.deepEqual(agent.livenessProbe?.httpGet, { path: '/healthz', port: 'metrics' });
  assert.deepEqual(agent.readinessProbe?.httpGet, { path: '/readyz', port: 'metrics' });
  assert.equal(flag('--debug-socket'), '/run/netpol-agent/debug.sock');
  assert.equal(flag('--listen'), undefined);
  assert.equal(agent.args?.[0], 'run');
});

test('it runs on every node, first among equals, and updates one node at a time', () => {
  // A toleration with operator Exists and no key tolerates every taint: control-plane,
  // node.cloudprovider.kubernetes.io/uninitialized, not-ready and unreachable included.
  assert.ok(pod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined));
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.equal(daemonSet.spec.updateStrategy?.type, 'RollingUpdate');
  assert.deepEqual(daemonSet.spec.template.metadata.labels, daemonSet.spec.selector.matchLabels);
});

function quantity(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|Mi|Gi)?$/.exec(text);
  assert.ok(m, `quantity ${text}`);
  const scale = { m: 1e-3, Mi: 2 ** 20, Gi: 2 ** 30 }[m[2] as 'm' | 'Mi' | 'Gi'] ?? 1;
  return Number(m[1]) * scale;
}

test('CPU and memory have requests and limits, the limits above the requests', () => {
  for (const resource of ['cpu', 'memory']) {
    const request = agent.resources?.requests?.[resource];
    const limit = agent.resources?.limits?.[resource];
    assert.ok(request !== undefined && limit !== undefined, `${resource} request and limit`);
    assert.ok(quantity(request) < quantity(limit), `${resource}: ${request} < ${limit}`);
  }
  // The agent's peak at the reference scale, measured in its image (daemonset.yaml says how).
  assert.ok(quantity(agent.resources?.limits?.memory ?? '0') > 795 * 2 ** 20);
});

test('the image is the one the Dockerfile builds, tagged with the package version, and kustomize can override it', () => {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(agent.image, `netpol-agent:${version}`);
  assert.deepEqual(install.kustomization.images, [{ name: 'netpol-agent', newTag: version }]);
});

test('the examples are the docs walkthrough: nginx behind a Service, and access-nginx selecting it', () => {
  const examples = kustomize(join(MANIFESTS, 'examples'));
  const deployment = only(examples.objects, 'Deployment') as DaemonSet;
  const service = only(examples.objects, 'Service') as KubeObject & { spec: { selector: Record<string, string>; ports: { port: number }[] } };
  const policy = only(examples.objects, 'NetworkPolicy') as KubeObject & { spec: { podSelector: { matchLabels: Record<string, string> } } };
  const podLabels = deployment.spec.template.metadata.labels;
  assert.deepEqual(podLabels, { app: 'nginx' });
  assert.equal(deployment.spec.template.spec.containers[0].image, 'nginx');
  assert.deepEqual(service.spec.selector, podLabels);
  assert.equal(service.spec.ports[0].port, 80);
  // The same policy as the repository's walkthrough scenario, in whatever namespace it is applied to.
  const [reference] = readYaml(join(ROOT, 'examples/access-nginx/nginx-policy.yaml')) as typeof policy[];
  assert.equal(policy.metadata.name, 'access-nginx');
  assert.deepEqual(policy.spec, reference.spec);
  assert.deepEqual(policy.spec.podSelector.matchLabels, podLabels);
  const readme = readFileSync(join(MANIFESTS, 'examples/README.md'), 'utf8');
  for (const command of ['kubectl run busybox --rm -ti --image=busybox:1.28 -- /bin/sh', 'kubectl run busybox --rm -ti --labels="access=true" --image=busybox:1.28 -- /bin/sh', 'wget --spider --timeout=1 nginx']) {
    assert.ok(readme.includes(command), `README has: ${command}`);
  }
});
