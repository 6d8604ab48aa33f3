// netpol-agent's command line: thin actions over the same modules the agent uses.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { IpFamily, Protocol } from '../api';
import { AgentError } from '../errors';
import { DEFAULT_SCENARIO, runDemo } from '../demo';
import { computeProbe, formatJson, formatTable, observeProbe } from '../probe';
import type { Topology } from '../sandbox';
import { loadManifests } from '../source';

const EXIT_BAD_INPUT = 2;

function parsePort(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a port is an integer from 1 to 65535');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
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
}

function parseTimeout(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 50 || n > 60_000) throw new InvalidArgumentError('a timeout is from 50 to 60000 milliseconds');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('netpol-agent').description('Kubernetes NetworkPolicy enforcement over nftables').showHelpAfterError();
  program
    .command('probe')
    .description('what-if: for every pair of pods and every port the destination declares, is a new connection allowed?')
    .requiredOption('-f, --file <path>', 'YAML/JSON manifests: a file, a directory, multi-document or kind: List (repeatable)', collect, [])
    .option('--port <n>', 'only this destination port', parsePort)
    .addOption(new Option('--protocol <p>', 'only this protocol').choices(['TCP', 'UDP', 'SCTP']))
    .addOption(new Option('--family <f>', 'address family for dual-stack pods').choices(['4', '6']))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--dataplane', 'observe instead of compute: build the pods as network namespaces, program real nftables, send real packets (root)')
    .addOption(new Option('--topology <shape>', 'with --dataplane: how pods attach to their node').choices(['routed', 'bridged']).default('routed'))
    .option('--timeout <ms>', 'with --dataplane: how long a connection attempt waits before it counts as dropped', parseTimeout, 1000)
    .action(async (opts: ProbeCliOptions) => {
      const objects = loadManifests(opts.file);
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
    .description('the Kubernetes docs walkthrough with real packets: nginx, busybox wget, and a policy that lets only access="true" pods in (root)')
    .option('-f, --file <path>', 'scenario manifests (default: the embedded access-nginx scenario)', collect, [])
    .addOption(new Option('--topology <shape>', 'how pods attach to their node').choices(['routed', 'bridged']).default('routed'))
    .action(async (opts: { file: string[]; topology: Topology }) => {
      await runDemo({ files: opts.file.length > 0 ? opts.file : [DEFAULT_SCENARIO], topology: opts.topology, write: (line) => process.stdout.write(`${line}\n`) });
    });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof AgentError && (err.code === 'INVALID_INPUT' || err.code === 'INVALID_OBJECT')) {
      process.stderr.write(`netpol-agent: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
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
