// probe's command line: one JSON object on success, exit 2 and a message naming the file and object
// on bad input, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve(__dirname, '../../../bin/netpol-agent');
const EXAMPLE = resolve(__dirname, '../../../examples/access-nginx');

function probe(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, ['probe', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('probe -o json prints exactly one object with the docs walkthrough answers', () => {
  const r = probe(['-f', EXAMPLE, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { results: { from: string; to: string; allowed: boolean; reason: string }[] };
  const get = (from: string) => out.results.find((x) => x.from === from && x.to === 'default/nginx');
  assert.equal(get('default/busybox')?.allowed, false);
  assert.match(get('default/busybox')?.reason ?? '', /isolated by default\/access-nginx/);
  assert.equal(get('default/busybox-access')?.allowed, true);
  assert.match(get('default/busybox-access')?.reason ?? '', /default\/access-nginx\/ingress\/0/);
});

test('bad input exits 2 with the file and object named, and no stack trace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netpol-cli-'));
  try {
    const cases: [string, RegExp][] = [
      ['a: [\n', /bad\.yaml: document 1 is not valid YAML/],
      ['apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: nope}}]}]\n', /bad\.yaml: NetworkPolicy x\/p: spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr/],
      ['apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: x}\nspec: {containers: [{name: c, ports: [{name: TooLongPortName1, containerPort: 80}]}]}\n', /Pod x\/q: spec\.containers\[0\]\.ports\[0\]\.name/],
    ];
    for (const [text, message] of cases) {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, text);
      const r = probe(['-f', file]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.equal(probe(['-f', join(dir, 'missing.yaml')]).code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
