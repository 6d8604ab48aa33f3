// charts/netpol-agent through a real API server: `helm template` output, with the defaults and with
// every option operators set, passes `kubectl apply --dry-run=server` (schema, defaulting, admission:
// Pod Security on the namespace, the priority class) on a control-plane-only cluster. Needs root, the
// build of test/e2e/cluster/build.sh and scripts/build-helm.sh. Run with `npm run test:e2e`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { Cluster } from './cluster';
import { helmBinary, helmTemplate, parseObjects } from '../support/chart-tools';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : process.env.E2E_CLUSTER !== '1' ? 'real-cluster tier: run it with `npm run test:e2e` (E2E_CLUSTER=1)' : false;

// Every option of values.yaml set away from its default at once.
const EVERY_OPTION = [
  '--set', 'image.repository=registry.example/netpol-agent,image.tag=9.9.9,image.pullPolicy=Always',
  '--set', 'metrics.port=9100,metrics.onNodeAddress=true,audit=true,logLevel=debug',
  '--set', 'dropLog.group=7,dropLog.rate=20,dropLog.window=10s',
  '--set', 'cni.enabled=true,cni.failurePolicy=fail-open,cni.timeoutMs=5000,cni.binDir=/usr/lib/cni',
  '--set-json', 'resources={"requests":{"cpu":"100m","memory":"256Mi"},"limits":{"memory":"2Gi"}}',
  '--set-json', 'extraTolerations=[{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}]',
  '--set-json', 'nodeSelector={"kubernetes.io/os":"linux"}',
  '--set-json', 'extraArgs=["--resync-period=10m"]',
];

describe('the Helm chart against a real API server', { skip: SKIP }, () => {
  let cluster: Cluster;
  let helm = '';

  before(async () => {
    helm = helmBinary();
    cluster = await Cluster.start({ controlPlaneOnly: true, onLog: (l) => console.log(`# ${l}`) });
    // Namespaced objects are validated only in an existing namespace: create the chart's Namespace for
    // real (it is part of the output below, whose dry run then finds it unchanged).
    const namespace = parseObjects(helmTemplate(helm), 'helm template').filter((o) => o.kind === 'Namespace');
    assert.equal(namespace.length, 1, 'the chart renders its Namespace');
    await cluster.kubectlOk(['apply', '-f', '-'], { input: stringify(namespace[0]) });
  }, { timeout: 45 * 60_000 });

  after(async () => {
    await cluster?.stop();
  }, { timeout: 5 * 60_000 });

  for (const [name, args] of [['the defaults', []], ['every option set', EVERY_OPTION]] as const) {
    test(`helm template with ${name} passes kubectl apply --dry-run=server`, async () => {
      const rendered = helmTemplate(helm, args);
      const objects = parseObjects(rendered, `helm template ${args.join(' ')}`);
      const r = await cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rendered });
      assert.equal(r.code, 0, `kubectl apply --dry-run=server: ${r.stderr}${r.stdout}`);
      // One line per object, each one accepted by the server (not only parsed by kubectl).
      const accepted = r.stdout.split('\n').filter((line) => line.endsWith('(server dry run)'));
      assert.equal(accepted.length, objects.length, r.stdout);
      assert.ok(accepted.some((line) => line.startsWith(`daemonset.apps/netpol-agent `)), r.stdout);
    });
  }
});
