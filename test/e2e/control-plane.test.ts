// The control-plane-only cluster (test/e2e/cluster/up.sh --control-plane-only) that tiers with sandbox
// nodes build on: real etcd, kube-apiserver and kube-controller-manager, no kubelet. Needs root and the
// build of test/e2e/cluster/build.sh. Run with `npm run test:e2e`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from './cluster';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : process.env.E2E_CLUSTER !== '1' ? 'real-cluster tier: run it with `npm run test:e2e` (E2E_CLUSTER=1)' : false;

const READER_RBAC = `apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-reader}
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: default}
`;

describe('control-plane-only cluster', { skip: SKIP }, () => {
  let cluster: Cluster;
  let state = '';

  before(async () => {
    cluster = await Cluster.start({ controlPlaneOnly: true, onLog: (l) => console.log(`# ${l}`) });
    state = cluster.state;
  }, { timeout: 45 * 60_000 });

  after(async () => {
    await cluster?.stop();
    assert.equal(existsSync(state), false, `${state} is still there after down.sh`);
  }, { timeout: 5 * 60_000 });

  test('has no node, and the controller-manager gives new namespaces their default ServiceAccount', async () => {
    assert.equal((await cluster.kubectlOk(['get', 'nodes', '-o', 'name'])).trim(), '');
    await cluster.kubectlOk(['create', 'namespace', 'team-a']);
    let sa = await cluster.kubectl(['get', 'serviceaccount', 'default', '-n', 'team-a']);
    for (let i = 0; i < 50 && sa.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      sa = await cluster.kubectl(['get', 'serviceaccount', 'default', '-n', 'team-a']);
    }
    assert.equal(sa.code, 0, sa.stderr);
  });

  test('a pod bound to a sandbox node gets the status a test patches, podIP included', async () => {
    await cluster.kubectlOk(['run', 'web', '--image=nginx:e2e', '--restart=Never', `--overrides={"spec":{"nodeName":"sandbox-1"}}`]);
    await cluster.kubectlOk(['patch', 'pod', 'web', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running","podIPs":[{"ip":"10.244.1.5"}]}}']);
    assert.equal(await cluster.kubectlOk(['get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}']), '10.244.1.5');
  });

  test('a ServiceAccount token kubeconfig lists what its ClusterRole grants and nothing more', async () => {
    await cluster.kubectlOk(['apply', '-f', '-'], { input: READER_RBAC });
    for (const server of [undefined, `https://${cluster.nodeIp}:6443`]) {
      const kubeconfig = await cluster.serviceAccountKubeconfig('default', 'reader', server);
      const kubectl = (args: string[]) => cluster.inNetns(join(cluster.binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args]);
      const pods = await kubectl(['get', 'pods', '-A', '-o', 'name']);
      assert.equal(pods.code, 0, pods.stderr);
      assert.match(pods.stdout, /pod\/web/);
      const secrets = await kubectl(['get', 'secrets', '-n', 'default']);
      assert.notEqual(secrets.code, 0);
      assert.match(secrets.stderr, /Forbidden/);
    }
  });
});
