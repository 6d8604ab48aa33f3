// netpol-agent's command line: thin actions over the same modules the agent uses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { DEFAULT_TABLE } from '../dataplane';
import { DEFAULT_DEBUG_SOCKET, DEFAULT_DROP_LOGGING, DEFAULT_METRICS_LISTEN, auditTableName, getOverSocket, removeTable, startAgent } from '../agent';
import type { IpFamily, Protocol } from '../api';
import { AgentError, InvalidInputError, errorMessage, type ErrorCode } from '../errors';
import { DEFAULT_SCENARIO, runDemo } from '../demo';
import { DEFAULT_CNI_SOCKET, PLUGIN_TYPE, installPlugin, uninstallPlugin, waitForConf } from '../cni';
import type { FailurePolicy } from '../cni';
import { computeProbe, formatJson, formatTable, observeProbe } from '../probe';
import { ExplainError, compiledTables, explainConnection, formatExplanation } from '../observe/explain';
import type { Topology } from '../sandbox';
import { loadManifests } from '../source';

// Exit codes (listed in --help and the README): 0 done, 1 internal error (a bug: message and stack),
// 2 bad input or bad usage, 3 the dataplane or the sandbox failed (message only; the stack with
// NETPOL_AGENT_DEBUG=1).
const EXIT_BAD_INPUT = 2;
const EXIT_DATAPLANE = 3;
const EXIT_CODE_OF: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: EXIT_BAD_INPUT,
  INVALID_OBJECT: EXIT_BAD_INPUT,
  DATAPLANE: EXIT_DATAPLANE,
  SANDBOX: EXIT_DATAPLANE,
  NFT: EXIT_DATAPLANE,
  KUBERNETES_API: EXIT_BAD_INPUT,
};
const EXIT_CODES_HELP = `
Exit codes:
  0  done
  1  internal error (a bug; the message has a stack trace)
  2  bad input (the message names the file, the object and the field), bad usage, or no usable Kubernetes configuration
  3  nftables, the dataplane or the sandbox failed (set NETPOL_AGENT_DEBUG=1 for a stack trace)`;

function parsePort(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a port is an integer from 1 to 65535');
  return n;
}

/** A repeatable option; undefined until given, so that requiredOption can tell it was not. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface ProbeCliOptions {
  file: string[];
  port?: number;
  protocol?: Protocol;
  family?: string;
  output: 'table' | 'json';
  dataplane?: boolean;
  topology: Topology;
  timeout: number;
  explain?: boolean;
  from?: string;
  to?: string;
}

function parseTimeout(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 50 || n > 60_000) throw new InvalidArgumentError('a timeout is from 50 to 60000 milliseconds');
  return n;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** Kubernetes-style durations: "90s", "5m", "1h", "1m30s", "250ms"; "0" turns the thing off. */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const rest = text.replace(/(\d+(?:\.\d+)?)(ms|s|m|h)/g, (_all, n: string, unit: string) => {
    total += Number(n) * (units[unit] ?? 0);
    return '';
  });
  if (rest !== '' || text === '') throw new InvalidArgumentError('a duration such as 30s, 5m or 1h (0: never)');
  return total;
}

function packageVersion(): string {
  // Compiled to build/src/cli/main.js, three levels below package.json.
  const pkg: unknown = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

interface RunCliOptions {
  nodeName?: string;
  kubeconfig?: string;
  datastoreFile?: string;
  metricsListen: string;
  debugSocket: string;
  logLevel: string;
  resyncPeriod: number;
  watchSilenceTimeout: number;
  table: string;
  cniSocket?: string;
  cniConfDir?: string;
  dropLog: boolean;
  dropLogGroup: number;
  dropLogRate: number;
  dropLogWindow: number;
  audit?: boolean;
}

function parseNflogGroup(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('an nflog group is an integer from 0 to 65535');
  return n;
}

function parseRate(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError('a rate is an integer from 1 to 100000 per second');
  return n;
}

interface RulesCliOptions {
  socket: string;
  pod?: string;
  policy?: string;
  verbose?: boolean;
  output: 'text' | 'json';
}

function addAgentCommands(program: Command): void {
  program
    .command('run')
    .description('the agent: watch the cluster (or --datastore-file), keep this node\'s nftables in step, serve /healthz, /readyz, /metrics on --metrics-listen and /rules, /explain, /drops on --debug-socket')
    .addOption(new Option('--node-name <name>', 'this node, as in spec.nodeName of its pods').env('NODE_NAME'))
    .option('--kubeconfig <path>', 'kubeconfig to reach the API server (default: in-cluster config)')
    .option('--datastore-file <path>', 'read Namespaces, Pods and NetworkPolicies from this YAML file or directory (watched) instead of the API server')
    .option('--metrics-listen <host:port>', 'address of /healthz, /readyz and /metrics (loopback by default; the node address to be scraped)', DEFAULT_METRICS_LISTEN)
    .option('--debug-socket <path>', 'unix socket (mode 0600) of /rules, /explain and /drops, read by `netpol-agent rules`', DEFAULT_DEBUG_SOCKET)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--resync-period <duration>', 'period of the full reconcile that repairs drift (0: never)').argParser(parseDuration).default(parseDuration('5m'), '5m'))
    .addOption(new Option('--watch-silence-timeout <duration>', 'restart a watch that delivered no event and no bookmark for this long (the API server sends a bookmark about every minute)').argParser(parseDuration).default(parseDuration('150s'), '150s'))
    .option('--table <name>', 'the inet table the agent owns', DEFAULT_TABLE)
    .option('--cni-socket <path>', `unix socket of the chained CNI plugin netpol-agent-cni, which holds each pod's start until its rules are committed (off by default; the plugin's default is ${DEFAULT_CNI_SOCKET})`)
    .option('--cni-conf-dir <dir>', 'with --cni-socket: the host\'s CNI configuration directory (mounted); the plugin\'s entry is chained again whenever the main CNI rewrites its configuration without it')
    .option('--no-drop-log', 'do not log denied connections (no log rule in the group chains, no nflog reader)')
    .option('--drop-log-group <n>', 'nfnetlink_log group the denied connections are sent to', parseNflogGroup, DEFAULT_DROP_LOGGING.group)
    .option('--drop-log-rate <n>', 'most denied connections logged per second and group chain (the kernel drops the rest unlogged)', parseRate, DEFAULT_DROP_LOGGING.rate)
    .addOption(new Option('--drop-log-window <duration>', 'identical denied connections within this window are logged as one line with a count').argParser(parseDuration).default(parseDuration('5s'), '5s'))
    .option('--audit', 'audit only: evaluate every policy and log what it would drop, enforce none (per policy: annotation netpol-agent.io/enforcement: audit)')
    .action(async (opts: RunCliOptions) => {
      if (opts.nodeName === undefined || opts.nodeName === '') throw new InvalidInputError('--node-name', 'is required: pass --node-name or set NODE_NAME (the downward API\'s spec.nodeName)');
      if (opts.cniConfDir !== undefined && opts.cniSocket === undefined) throw new InvalidInputError('--cni-conf-dir', 'needs --cni-socket: the plugin it keeps chained asks the agent on that socket');
      const logger = pino({ level: opts.logLevel, base: { node: opts.nodeName } });
      const agent = await startAgent({
        node: opts.nodeName,
        table: opts.table,
        metricsListen: opts.metricsListen,
        debugSocket: opts.debugSocket,
        resyncPeriodMs: opts.resyncPeriod,
        watchSilenceTimeoutMs: opts.watchSilenceTimeout,
        logger,
        dropLog: opts.dropLog ? { group: opts.dropLogGroup, rate: opts.dropLogRate, burst: 2 * opts.dropLogRate } : null,
        dropWindowMs: opts.dropLogWindow,
        audit: opts.audit === true,
        ...(opts.datastoreFile !== undefined ? { datastoreFile: opts.datastoreFile } : {}),
        ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
        ...(opts.cniSocket !== undefined ? { cniSocket: opts.cniSocket } : {}),
        ...(opts.cniConfDir !== undefined ? { cniConfDir: opts.cniConfDir } : {}),
      });
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      logger.info({ signal }, 'stopping');
      await agent.stop();
    });
  program
    .command('rules')
    .description('print a running agent\'s compiled rules (its /rules endpoint, on the debug socket)')
    .option('--socket <path>', 'the agent\'s debug socket (run --debug-socket)', DEFAULT_DEBUG_SOCKET)
    .option('--pod <namespace/name>', 'only this local pod')
    .option('--policy <namespace/name>', 'only this policy')
    .option('-v, --verbose', 'list resolved peer addresses')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: RulesCliOptions) => {
      const url = new URL('/rules', 'http://agent');
      if (opts.pod !== undefined) url.searchParams.set('pod', opts.pod);
      if (opts.policy !== undefined) url.searchParams.set('policy', opts.policy);
      if (opts.verbose === true) url.searchParams.set('verbose', '1');
      url.searchParams.set('format', opts.output);
      let body: string;
      try {
        const res = await getOverSocket(opts.socket, `${url.pathname}${url.search}`, 10_000);
        body = res.body;
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body.trim()}`);
      } catch (err) {
        throw new InvalidInputError(opts.socket, `cannot read the agent's rules: ${errorMessage(err)}; is \`netpol-agent run\` serving its debug socket there (--socket)?`, { cause: err });
      }
      process.stdout.write(body);
    });
  program
    .command('cleanup')
    .description('uninstall: delete the agent\'s nftables table and every rule it programmed (root)')
    .option('--table <name>', 'the inet table the agent owns', DEFAULT_TABLE)
    .action(async (opts: { table: string }) => {
      for (const table of [opts.table, auditTableName(opts.table)]) {
        const existed = await removeTable(table);
        if (existed || table === opts.table) process.stdout.write(existed ? `deleted table inet ${table}\n` : `no table inet ${table}: nothing to delete\n`);
      }
    });
}

interface CniInstallCliOptions {
  confDir: string;
  binDir: string;
  plugin: string;
  socketPath: string;
  timeout: number;
  failurePolicy: FailurePolicy;
  wait: number;
}

function parsePluginTimeout(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 300_000) throw new InvalidArgumentError('milliseconds, from 1 to 300000');
  return n;
}

/** The chained CNI plugin's installer, run by the DaemonSet's init container (see docs/cni.md). */
function addCniCommands(program: Command): void {
  program
    .command('cni-install')
    .description('install netpol-agent-cni on this node: copy it to the CNI bin directory and chain it last in the CNI configuration in use (idempotent)')
    .option('--conf-dir <dir>', 'the CNI configuration directory', '/etc/cni/net.d')
    .option('--bin-dir <dir>', 'the CNI plugin directory', '/opt/cni/bin')
    .option('--plugin <path>', 'the plugin binary to copy', join(__dirname, '..', '..', '..', 'cni-plugin', 'build', 'netpol-agent-cni'))
    .option('--socket-path <path>', 'the agent\'s socket, as the plugin reaches it on the host (run --cni-socket)', DEFAULT_CNI_SOCKET)
    .option('--timeout <ms>', 'how long ADD waits for the agent', parsePluginTimeout, 10_000)
    .addOption(new Option('--failure-policy <policy>', 'when the agent does not confirm: fail-closed (the pod waits, the runtime retries) or fail-open (the pod starts unprotected)').choices(['fail-closed', 'fail-open']).default('fail-closed'))
    .option('--wait <duration>', 'wait this long for the main CNI to write its configuration (0: do not wait)', parseDuration, 0)
    .action(async (opts: CniInstallCliOptions) => {
      if (opts.wait > 0 && !(await waitForConf(opts.confDir, opts.wait))) throw new InvalidInputError(opts.confDir, `no CNI network configuration appeared within ${opts.wait} ms`);
      const r = installPlugin({ confDir: opts.confDir, binDir: opts.binDir, pluginBinary: opts.plugin, socketPath: opts.socketPath, timeoutMs: opts.timeout, failurePolicy: opts.failurePolicy });
      process.stdout.write(`${r.binaryChanged ? 'installed' : 'up to date:'} ${join(opts.binDir, PLUGIN_TYPE)}\n${r.confChanged ? 'chained in' : 'already chained in'} ${r.confFile}\n`);
    });
  program
    .command('cni-uninstall')
    .description('remove netpol-agent-cni from this node\'s CNI configurations (restoring them as found) and its binary; run it before removing the agent, or pods stop starting under fail-closed')
    .option('--conf-dir <dir>', 'the CNI configuration directory', '/etc/cni/net.d')
    .option('--bin-dir <dir>', 'the CNI plugin directory', '/opt/cni/bin')
    .action((opts: { confDir: string; binDir: string }) => {
      const r = uninstallPlugin(opts);
      for (const f of r.confFiles) process.stdout.write(`removed from ${f}\n`);
      if (r.confFiles.length === 0) process.stdout.write(`not chained in any configuration of ${opts.confDir}\n`);
      process.stdout.write(r.binaryRemoved ? `deleted ${join(opts.binDir, PLUGIN_TYPE)}\n` : `no ${join(opts.binDir, PLUGIN_TYPE)}\n`);
    });
}

export function buildProgram(): Command {
  // exitOverride: a usage error throws (and reaches main) instead of exiting 1; commands inherit it.
  const program = new Command('netpol-agent').description('Kubernetes NetworkPolicy enforcement over nftables').version(packageVersion())
    .showHelpAfterError().exitOverride().addHelpText('after', EXIT_CODES_HELP);
  addAgentCommands(program);
  addCniCommands(program);
  program
    .command('probe')
    .description('what-if: for every pair of pods and every port the destination declares, is a new connection allowed?')
    .requiredOption('-f, --file <path>', 'YAML/JSON manifests: a file, a directory, multi-document or kind: List (repeatable)', collect)
    .option('--port <n>', 'only this destination port', parsePort)
    .addOption(new Option('--protocol <p>', 'only this protocol').choices(['TCP', 'UDP', 'SCTP']))
    .addOption(new Option('--family <f>', 'address family for dual-stack pods').choices(['4', '6']))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--dataplane', 'observe instead of compute: build the pods as network namespaces, program real nftables, send real packets (root)')
    .addOption(new Option('--topology <shape>', 'with --dataplane: how pods attach to their node').choices(['routed', 'bridged']).default('routed'))
    .option('--timeout <ms>', 'with --dataplane: how long a connection attempt waits before it counts as dropped', parseTimeout, 1000)
    .option('--explain', 'one connection (--from, --to, --port, --protocol): allowed or denied, which policies and rules decide, and for a denial what the closest rules would need')
    .option('--from <pod|ip>', 'with --explain: the source, namespace/name or an address')
    .option('--to <pod|ip>', 'with --explain: the destination, namespace/name or an address')
    .action(async (opts: ProbeCliOptions) => {
      const objects = loadManifests(opts.file);
      if (opts.explain === true) {
        if (opts.from === undefined || opts.to === undefined || opts.port === undefined) throw new InvalidInputError('--explain', 'needs --from, --to and --port (and --protocol, default TCP)');
        let explanation;
        try {
          const query = { from: opts.from, to: opts.to, port: opts.port, protocol: opts.protocol ?? 'TCP', ...(opts.family !== undefined ? { family: Number(opts.family) as IpFamily } : {}) };
          explanation = explainConnection(objects, query, compiledTables(objects));
        } catch (err) {
          if (err instanceof ExplainError) throw new InvalidInputError('--explain', err.message);
          throw err;
        }
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
        return;
      }
      const filter = {
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(opts.protocol !== undefined ? { protocol: opts.protocol } : {}),
        ...(opts.family !== undefined ? { family: Number(opts.family) as IpFamily } : {}),
      };
      const results = opts.dataplane === true
        ? await observeProbe(objects, filter, { topology: opts.topology, timeoutMs: opts.timeout })
        : computeProbe(objects, filter);
      process.stdout.write(`${opts.output === 'json' ? formatJson(results) : formatTable(results)}\n`);
    });
  program
    .command('demo')
    .description('the Kubernetes docs walkthrough on the real agent (one `run` per node, in network namespaces) with real packets: nginx, busybox wget, and a policy that lets only access="true" pods in (root)')
    .option('-f, --file <path>', 'scenario manifests (default: the embedded access-nginx scenario)', collect)
    .addOption(new Option('--topology <shape>', 'how pods attach to their node').choices(['routed', 'bridged']).default('routed'))
    .option('--keep', 'leave the namespaces and the agents running after the walkthrough, to explore, until Ctrl-C')
    .action(async (opts: { file?: string[]; topology: Topology; keep?: boolean }) => {
      await runDemo({ files: opts.file ?? [DEFAULT_SCENARIO], topology: opts.topology, keep: opts.keep === true, write: (line) => process.stdout.write(`${line}\n`) });
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (err) {
    return reportFailure(err);
  }
}

function debugEnabled(): boolean {
  const value = process.env['NETPOL_AGENT_DEBUG'];
  return value !== undefined && value !== '' && value !== '0';
}

/**
 * Reports an expected failure through `write` (stderr) and gives its exit code; anything else is
 * rethrown, to be reported as an internal error with its stack.
 */
export function reportFailure(err: unknown, write: (text: string) => void = (text) => process.stderr.write(text)): number {
  // commander has already printed the usage error (or the help, when asked for: exit 0).
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
  const code = err instanceof AgentError ? EXIT_CODE_OF[err.code] : undefined;
  if (!(err instanceof AgentError) || code === undefined) throw err;
  write(`netpol-agent: ${debugEnabled() ? err.stack ?? err.message : err.message}\n`);
  if (debugEnabled() && err.cause instanceof Error) write(`caused by: ${err.cause.stack ?? err.cause.message}\n`);
  return code;
}

if (require.main === module) {
  main(process.argv).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`netpol-agent: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
