// The upstream Kubernetes netpol e2e suite, case by case, through `netpol-agent probe -o json`:
// the compiled rule tables must give upstream's truth table for every probed port and protocol.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { baseCluster } from './cluster';
import { compareTruthTables, formatReachabilityReport, pairKey } from './reachability';
import { asListManifest, replay } from './scenario';
import { caseFullName, upstreamCases } from './upstream-cases';
import { extraCases } from './extra-cases';

const CLI = resolve(__dirname, '../../../bin/netpol-agent');

interface JsonResult { from: string; to: string; port: number; protocol: string; allowed: boolean; reason: string }

let dir = '';
before(() => { dir = mkdtempSync(join(tmpdir(), 'netpol-conformance-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

for (const family of [4, 6] as const) {
  describe(`upstream netpol conformance through probe (IPv${family})`, () => {
    const cluster = baseCluster({ dualStack: family === 6 });
    for (const c of [...upstreamCases, ...extraCases].filter((k) => k.ipFamilies.includes(family))) {
      test(caseFullName(c), () => {
        for (const state of replay(c, cluster)) {
          const file = join(dir, 'cluster.json');
          writeFileSync(file, asListManifest(state.objects));
          const out = execFileSync(CLI, ['probe', '-f', file, '-o', 'json', '--family', String(family)], { encoding: 'utf8' });
          const results = (JSON.parse(out) as { results: JsonResult[] }).results;
          for (const probe of state.step.probes) {
            const observed = new Map<string, boolean>();
            for (const r of results) if (r.port === probe.port && r.protocol === probe.protocol) observed.set(pairKey(r.from, r.to), r.allowed);
            const cmp = compareTruthTables(probe.expected, observed, probe.ignored);
            assert.equal(cmp.missing.length, 0, `step ${state.index + 1}: pairs not probed: ${cmp.missing.join(', ')}`);
            assert.equal(cmp.wrong.length, 0, `step ${state.index + 1} "${state.step.description}" ${probe.protocol}/${probe.port}:\n${formatReachabilityReport(probe.expected, observed, probe.ignored)}`);
          }
        }
      });
    }
  });
}
