// The product (src/, what the image carries) imports nothing outside src/: not the test doubles and
// harnesses of test/support/, not the tests, not bench/. Only packages and src/ itself. Benchmarks
// (bench/) may use the doubles and harnesses, and only those: nothing else under test/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const SRC = join(ROOT, 'src');
const BENCH = join(ROOT, 'bench');
const TEST = join(ROOT, 'test');
const TEST_SUPPORT = join(TEST, 'support');

// Every way a TypeScript file names another module: import/export ... from, import('...'), require('...'),
// and a bare `import '...'`.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])([^'"]+)\1/gm;

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return typescriptFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const isUnder = (path: string, dir: string): boolean => path === dir || path.startsWith(dir + sep);

/** The relative imports of one file's text that resolve to a path `forbidden` says no to, as "file: specifier (-> path)". */
function forbiddenImports(file: string, text: string, forbidden: (target: string) => boolean): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(SPECIFIER)) {
    const specifier = match[2] as string;
    if (!specifier.startsWith('.')) continue; // a package (node:*, prom-client, nftables-napi...)
    const target = resolve(dirname(file), specifier);
    if (forbidden(target)) found.push(`${relative(ROOT, file)}: '${specifier}' (-> ${relative(ROOT, target)})`);
  }
  return found;
}

const importsLeavingSrc = (file: string, text: string): string[] => forbiddenImports(file, text, (target) => !isUnder(target, SRC));
const benchImportsOfTests = (file: string, text: string): string[] => forbiddenImports(file, text, (target) => isUnder(target, TEST) && !isUnder(target, TEST_SUPPORT));

test('the scan finds an import from src/ into test/ in every form a file can write it', () => {
  const file = join(SRC, 'dataplane', 'example.ts');
  const text = [
    "import { FakeNft } from '../../test/support/fake-nft';",
    "export { Tier } from '../../test/support/api-tier/tier';",
    "const kube = require('../../test/support/api-tier/kube');",
    "const lazy = await import('../../bench/report');",
    "import '../../test/unit/setup';",
    "import { Transaction } from './nft';",
    "import pino from 'pino';",
  ].join('\n');
  assert.deepEqual(importsLeavingSrc(file, text).map((line) => line.split(' (-> ')[1]), [
    'test/support/fake-nft)',
    'test/support/api-tier/tier)',
    'test/support/api-tier/kube)',
    'bench/report)',
    'test/unit/setup)',
  ]);
});

test('product code in src/ imports nothing from test/ (test doubles, harnesses) or bench/', () => {
  const files = typescriptFiles(SRC);
  assert.ok(files.length > 50, `found only ${files.length} files under ${SRC}`);
  const leaving = files.flatMap((file) => importsLeavingSrc(file, readFileSync(file, 'utf8')));
  assert.deepEqual(leaving, [], `src/ must stay shippable without test/: move what these need into src/, or the importer into test/:\n${leaving.join('\n')}`);
});

test('bench/ imports from test/ only the doubles and harnesses of test/support/', () => {
  assert.deepEqual(benchImportsOfTests(join(BENCH, 'example.ts'), "import { Tier } from '../test/e2e/api/tier';\nimport { FakeApiServer } from '../test/support/fake-apiserver';"), [
    "bench/example.ts: '../test/e2e/api/tier' (-> test/e2e/api/tier)",
  ]);
  const files = typescriptFiles(BENCH);
  assert.ok(files.length > 5, `found only ${files.length} files under ${BENCH}`);
  const leaving = files.flatMap((file) => benchImportsOfTests(file, readFileSync(file, 'utf8')));
  assert.deepEqual(leaving, [], `move what these need into test/support/:\n${leaving.join('\n')}`);
});
