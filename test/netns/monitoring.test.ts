// manifests/monitoring/ against a running agent: every metric the Grafana dashboard and the
// PrometheusRule alerts read is one that `netpol-agent run` exports on /metrics. The agent runs for real
// (file datastore, drop logging and the CNI socket on, so that every metric family is registered) inside
// a sandbox node's network namespace. Needs root.
//   node --test build/test/netns/monitoring.test.js
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { Sandbox } from '../../src/sandbox';
import { NodeAgent } from '../support/node-agent';
import { makeNamespace } from '../support/builders';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const MONITORING = resolve(__dirname, '../../../manifests/monitoring');
const TABLE = `monitoring_test_${process.pid}`;
const LISTEN = '127.0.0.1:9977';
// The CNI socket is served so that the CNI metrics are registered as in a DaemonSet with the plugin.
const CNI_SOCKET = join(tmpdir(), `netpol-monitoring-${process.pid}.sock`);

// PromQL words that are neither metrics nor functions.
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan']);
// Clauses whose parentheses hold label names.
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names a PromQL expression reads: identifiers outside label matchers ({...}), ranges
 * ([...]), strings and label lists (by (...)), that are not a function call or a keyword.
 */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  // Strings, matchers and ranges first: what is inside them is never a metric name.
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ').replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  // Numbers and durations (0.99, 5m) are one token, so that a unit is not read as a name.
  const tokens = bare.match(/\d[\w.]*|[A-Za-z_:][A-Za-z0-9_:]*|\(|\)|[^\sA-Za-z0-9_:()]+/g) ?? [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (!/^[A-Za-z_:]/.test(token)) continue;
    const word = token.toLowerCase();
    if (LABEL_LISTS.has(word) && tokens[i + 1] === '(') {
      while (i < tokens.length && tokens[i] !== ')') i++;
      continue;
    }
    // A function call, or an aggregation with its label list first: sum by (le) (...).
    const next = tokens[i + 1]?.toLowerCase() ?? '';
    if (KEYWORDS.has(word) || next === '(' || next === 'by' || next === 'without') continue;
    names.add(token);
  }
  return [...names];
}

/** The family a series name belongs to, given the families /metrics declares (histogram suffixes). */
function exportedSeries(exposition: string): Set<string> {
  const series = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m === null) continue;
    const [, name, type] = m as unknown as [string, string, string];
    series.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) series.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) series.add(name + suffix);
  }
  return series;
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; definition?: string }[] };
}
interface RuleFile { spec: { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] } }

/** Every expression of the dashboard and the alerts, with where it is. */
function monitoringExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(join(MONITORING, 'dashboard.json'), 'utf8')) as Dashboard;
  const rules = parse(readFileSync(join(MONITORING, 'prometheusrule.yaml'), 'utf8')) as RuleFile;
  return [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: `dashboard panel "${p.title}"`, expr: t.expr }))),
    ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [{ where: `dashboard variable ${v.name}`, expr: v.definition.replace(/^label_values\((.*),\s*\w+\)$/, '$1') }])),
    ...rules.spec.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record ?? '?'}`, expr: r.expr }))),
  ];
}

test('the metric-name reader finds the metrics of an expression and nothing else', () => {
  assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le, kind) (rate(a_seconds_bucket{node=~"$node", kind!="x"}[5m])))'), ['a_seconds_bucket']);
  assert.deepEqual(metricNames('min by (node, pod, component) (b_ready) == 0 and on (pod) c_total offset 5m'), ['b_ready', 'c_total']);
  assert.deepEqual(metricNames('sum without (le) (increase(d_total{result="error or up"}[10m])) > bool 0 unless e'), ['d_total', 'e']);
});

describe('manifests/monitoring/ reads only metrics a running agent exports', { skip: SKIP }, () => {
  let sandbox: Sandbox;
  let dir: string;
  let agent: ChildProcess | null = null;
  const nodeAgent = new NodeAgent(() => sandbox, () => dir, {
    node: 'node-1',
    listen: LISTEN,
    table: TABLE,
    extraArgs: ['--resync-period', '0', '--cni-socket', CNI_SOCKET],
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'monitoring-netns-'));
    writeFileSync(join(dir, 'cluster.yaml'), stringify(makeNamespace('shop')));
    sandbox = await Sandbox.create({ prefix: 'montest', topology: 'routed', nodes: ['node-1'], pods: [] });
    agent = nodeAgent.start();
    await nodeAgent.waitReady();
  });

  after(async () => {
    if (agent !== null) await nodeAgent.stop(agent);
    await sandbox?.destroy();
    for (const path of [dir, CNI_SOCKET]) if (path !== undefined) rmSync(path, { recursive: true, force: true });
  });

  test('every metric of the dashboard and the alerts is on /metrics', async () => {
    const scrape = await nodeAgent.get('/metrics', 'text/plain');
    assert.equal(scrape.status, 200, scrape.body);
    const exported = exportedSeries(scrape.body);
    assert.ok(exported.has('netpol_agent_pending_events'), `the scrape is the agent's:\n${scrape.body.slice(0, 2000)}`);
    const expressions = monitoringExpressions();
    assert.ok(expressions.length >= 8, `read ${expressions.length} expressions`);
    const missing = expressions.flatMap(({ where, expr }) => metricNames(expr).filter((name) => !exported.has(name)).map((name) => `${where}: ${name}`));
    assert.deepEqual(missing, [], `metrics the monitoring reads and the agent does not export:\n${missing.join('\n')}`);
  });
});
