// The demo's scenario split: what the datastore file holds from the start, and what the policy step
// adds (documents kept as written, so the agent reads them exactly as the user wrote them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_SCENARIO } from '../../src/demo';
import { loadScenario } from '../../src/demo/scenario';

function kinds(stream: string): string[] {
  return parseAllDocuments(stream).map((d) => String(d.get('kind')));
}

test('the embedded scenario starts without the policy, which the second step adds', () => {
  const s = loadScenario([DEFAULT_SCENARIO]);
  assert.deepEqual(kinds(s.initial), ['Namespace', 'Pod', 'Pod', 'Pod']);
  assert.deepEqual(kinds(s.policies), ['NetworkPolicy']);
  assert.deepEqual(s.policyFiles, [join(DEFAULT_SCENARIO, 'nginx-policy.yaml')]);
  assert.deepEqual(s.objects.policies.map((p) => p.name), ['access-nginx']);
});

test('policies and policy lists go to the second step, in any file; values stay as written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-scenario-'));
  try {
    writeFileSync(join(dir, 'all.yaml'), [
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {on: "yes"}}',
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: deny, namespace: shop}\n  spec: {podSelector: {}}',
    ].join('\n---\n'));
    const s = loadScenario([dir]);
    assert.deepEqual(kinds(s.initial), ['Namespace']);
    assert.match(s.initial, /on: "yes"/);
    assert.deepEqual(kinds(s.policies), ['NetworkPolicyList']);
    assert.deepEqual(s.policyFiles, [join(dir, 'all.yaml')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input is refused with the file named, before anything is created', () => {
  assert.throws(() => loadScenario(['/nonexistent-demo-scenario.yaml']), /nonexistent-demo-scenario\.yaml/);
});
