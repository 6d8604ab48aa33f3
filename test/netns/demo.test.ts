// `netpol-agent demo` end to end, as a user runs it: the transcript shows the docs' walkthrough enforced
// by the running agents (wget before and after the policy, /rules naming it, the programming latency),
// and nothing is left behind afterwards: no namespace, no process, no work directory, no nftables table
// in the root namespace. Also --keep (everything up until Ctrl-C) and Ctrl-C in the middle. Needs root.
//   node --test build/test/netns/demo.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const DEMO_MS = 120_000;

interface DemoRun {
  code: number | null;
  transcript: string;
  stderr: string;
}

/** Runs the demo; when `at` first matches the transcript so far, `then` runs (with the transcript). */
function runDemo(args: string[], at?: RegExp, then?: (transcript: string, pid: number) => Promise<void>): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let transcript = '';
    let stderr = '';
    let fired = false;
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`the demo did not finish within ${DEMO_MS} ms; transcript so far:\n${transcript}\n${stderr}`));
    }, DEMO_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      transcript += d;
      if (!fired && at !== undefined && then !== undefined && at.test(transcript)) {
        fired = true;
        then(transcript, child.pid ?? -1).catch((err: unknown) => {
          child.kill('SIGTERM');
          reject(err instanceof Error ? err : new Error(String(err)));
        });
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, transcript, stderr });
    });
  });
}

/** What the demo said it created: its sandbox's namespace prefix and its work directory. */
function createdBy(transcript: string): { sandbox: string; workDir: string } {
  const sandbox = /^# sandbox (demo-[a-z0-9]+) /m.exec(transcript)?.[1];
  const workDir = /^# datastore file (\/\S+)\/datastore\.yaml/m.exec(transcript)?.[1];
  assert.ok(sandbox !== undefined && workDir !== undefined, `the transcript names the sandbox and the datastore file:\n${transcript}`);
  return { sandbox, workDir };
}

function namespacesOf(sandbox: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${sandbox}-`));
}

/** Processes whose command line names the path (the agents name their datastore file). */
function processesNaming(path: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(path);
    } catch {
      return false; // gone meanwhile
    }
  }).map(Number);
}

function rootTables(): string {
  return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
}

function assertNothingLeft(transcript: string, tablesBefore: string): void {
  const { sandbox, workDir } = createdBy(transcript);
  assert.deepEqual(namespacesOf(sandbox), [], 'no namespace of the demo is left');
  assert.deepEqual(processesNaming(workDir), [], 'no agent is left running');
  assert.equal(existsSync(workDir), false, 'the work directory is removed');
  // The agents ran in the nodes' namespaces: the root namespace never had their table.
  if (!/inet netpol_agent$/m.test(tablesBefore)) assert.doesNotMatch(rootTables(), /inet netpol_agent$/m);
}

/** The output of each "kubectl exec POD -- wget" step of a part of the transcript, by pod name. */
function wgetResults(part: string): Map<string, string> {
  const results = new Map<string, string>();
  for (const block of part.split(/^(?=# kubectl exec )/m).slice(1)) {
    const pod = /^# kubectl exec (\S+) -- wget/.exec(block)?.[1] ?? '';
    results.set(pod, /remote file exists/.test(block) ? 'remote file exists' : /download timed out/.test(block) ? 'download timed out' : block);
  }
  return results;
}

test('the demo walks through the docs on the running agents, then leaves nothing behind', { skip: SKIP, timeout: DEMO_MS + 10_000 }, async () => {
  const tablesBefore = rootTables();
  const run = await runDemo([]);
  assert.equal(run.code, 0, `${run.transcript}\n${run.stderr}`);
  const t = run.transcript;
  assert.match(t.split('\n')[1] ?? '', /^# Standing in for kubectl/, 'says where it stands in for kubectl, in one line at the start');
  assert.match(t, /^\$ ip netns exec demo-\S+-node-1 \S+\/bin\/netpol-agent run --node-name node-1 --datastore-file \S+ --metrics-listen 127\.0\.0\.1:9977 --debug-socket \S+\/debug-node-1\.sock &$/m);
  const applyAt = t.indexOf('# kubectl apply -f');
  const rulesAt = t.indexOf('# what the agent of node-1 enforces');
  assert.ok(applyAt > 0 && rulesAt > applyAt, t);
  assert.deepEqual(Object.fromEntries(wgetResults(t.slice(0, applyAt))), { busybox: 'remote file exists', 'busybox-access': 'remote file exists' }, 'before the policy');
  assert.match(t.slice(applyAt), /^# kubectl apply -f \S*nginx-policy\.yaml: NetworkPolicy default\/access-nginx added to /);
  assert.deepEqual(Object.fromEntries(wgetResults(t.slice(applyAt, rulesAt))), { busybox: 'download timed out', 'busybox-access': 'remote file exists' }, 'after the policy');
  const report = t.slice(rulesAt);
  assert.match(report, /^\$ \S+ rules --socket \S+\/debug-node-1\.sock\nnode node-1 {2}table inet netpol_agent\nsync: ready/m);
  assert.match(report, /default\/nginx {2}10\.244\.1\.10\n {4}ingress: isolated by default\/access-nginx; chain in_[0-9a-f]{16}/);
  assert.match(report, /rule default\/access-nginx\/ingress\/0\n {8}peers: podSelector access=true/);
  assert.match(report, /^netpol_agent_programming_latency_seconds_count\{kind="NetworkPolicy"\} 1$/m);
  assert.match(report, /^netpol_agent_programming_latency_seconds_sum\{kind="NetworkPolicy"\} \d/m);
  assertNothingLeft(t, tablesBefore);
});

test('--keep leaves the agents and the pods running until Ctrl-C, which removes them', { skip: SKIP, timeout: DEMO_MS + 10_000 }, async () => {
  const tablesBefore = rootTables();
  let checkedWhileKept = false;
  const run = await runDemo(['--keep'], /^# Ctrl-C stops the agents.*\n.*\n/m, async (transcript, pid) => {
    const { sandbox, workDir } = createdBy(transcript);
    assert.ok(namespacesOf(sandbox).length >= 5, 'two nodes, three pods and the fabric are still there');
    assert.equal(processesNaming(workDir).length, 2, 'both agents still run');
    // The printed exploration command works as printed.
    const wget = /^# {3}(ip netns exec \S+ timeout 2 busybox wget --spider \S+)/m.exec(transcript)?.[1];
    assert.ok(wget !== undefined, transcript);
    assert.match(execFileSync('sh', ['-c', `${wget} 2>&1 || true`], { encoding: 'utf8' }), /Connecting to 10\.244\.1\.10/);
    const rules = /^# {3}(\S+ rules --socket \S+ --verbose)$/m.exec(transcript)?.[1];
    assert.ok(rules !== undefined, transcript);
    assert.match(execFileSync('sh', ['-c', rules], { encoding: 'utf8' }), /^sync: ready/m);
    checkedWhileKept = true;
    process.kill(pid, 'SIGINT');
  });
  assert.ok(checkedWhileKept, run.transcript);
  assert.equal(run.code, 0, `${run.transcript}\n${run.stderr}`);
  assert.match(run.transcript, /^# SIGINT: stopped the agents, removed \S+ and the namespaces demo-\S+$/m);
  assertNothingLeft(run.transcript, tablesBefore);
});

test('Ctrl-C in the middle of the walkthrough stops the agents and removes everything', { skip: SKIP, timeout: DEMO_MS + 10_000 }, async () => {
  const tablesBefore = rootTables();
  const run = await runDemo([], /^# every agent is ready/m, async (_transcript, pid) => {
    process.kill(pid, 'SIGINT');
  });
  assert.equal(run.code, 130, `${run.transcript}\n${run.stderr}`);
  assert.match(run.transcript, /^# SIGINT: stopped the agents/m);
  assertNothingLeft(run.transcript, tablesBefore);
});
