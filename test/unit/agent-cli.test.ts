// The agent's command line as issue 8 specifies it: run's flags with their documented defaults,
// rules, cleanup and --version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
/** The help text with its line wrapping undone. */
const help = (...args: string[]): string => execFileSync(process.execPath, [MAIN, ...args, '--help'], { encoding: 'utf8' }).replace(/\s+/g, ' ');

test('run has every flag of the issue, each with its documented default', () => {
  const text = help('run');
  for (const expected of [
    '--node-name <name> this node, as in spec.nodeName of its pods (env: NODE_NAME)',
    '--kubeconfig <path> kubeconfig to reach the API server (default: in-cluster config)',
    '--datastore-file <path>',
    '--metrics-listen <host:port> address of /healthz, /readyz and /metrics (loopback by default; the node address to be scraped) (default: "127.0.0.1:9977")',
    '--debug-socket <path> unix socket (mode 0600) of /rules, /explain and /drops, read by `netpol-agent rules` (default: "/run/netpol-agent/debug.sock")',
    '"info")',
    '--log-level <level>',
    '--resync-period <duration> period of the full reconcile that repairs drift (0: never) (default: 5m)',
    '--table <name> the inet table the agent owns (default: "netpol_agent")',
    'bookmark about every minute) (default: 150s)',
  ]) assert.ok(text.includes(expected), `run --help lacks ${JSON.stringify(expected)}:\n${text}`);
});

test('rules, cleanup and --version exist', () => {
  assert.match(help('rules'), /--socket <path> the agent's debug socket \(run --debug-socket\) \(default: "\/run\/netpol-agent\/debug\.sock"\)/);
  assert.match(help('cleanup'), /--table <name>/);
  assert.match(execFileSync(process.execPath, [MAIN, '--version'], { encoding: 'utf8' }), /^\d+\.\d+\.\d+\n$/);
});
