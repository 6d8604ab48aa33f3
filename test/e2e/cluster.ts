// A real cluster for end-to-end tests, started and removed by the scripts in test/e2e/cluster/ (see its
// README). The full mode is one or two real nodes (kubelet, containerd, bridge CNI, kube-proxy; CoreDNS),
// each in its own network namespace, their pod ranges routed to each other; the
// control-plane-only mode is etcd + kube-apiserver + kube-controller-manager for tests that bring their
// own sandbox nodes. Everything lives in a network namespace the scripts create; kubectl runs inside it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const CLUSTER_SCRIPTS = resolve(__dirname, '../../../test/e2e/cluster');
export const REPO_ROOT = resolve(__dirname, '../../..');

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ClusterOptions {
  controlPlaneOnly?: boolean;
  /** Real nodes in full mode: 1 (the default) or 2. */
  nodes?: 1 | 2;
  /** docker-save archives imported into the node's containerd (the agent's image, for example). */
  images?: string[];
  /** Called with each line the scripts print (progress, timings). */
  onLog?: (line: string) => void;
}

/** Runs a command, collecting its output; never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolveResult, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number' && err.killed !== true) {
        reject(err);
        return;
      }
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 124;
      resolveResult({ code, stdout, stderr });
    });
    // A child may exit without reading its input (kubectl refusing its arguments): its exit status and output
    // say so, and are the result; the EPIPE of the write that lost the race is not an error of the test's.
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a script of test/e2e/cluster, streaming its stderr lines to onLog; resolves with its stdout. */
function runScript(script: string, args: string[], onLog: (line: string) => void): Promise<CommandResult> {
  return new Promise((resolveResult, reject) => {
    const child = spawn(join(CLUSTER_SCRIPTS, script), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(onLog);
    });
    child.on('error', reject);
    child.on('close', (code) => resolveResult({ code: code ?? 1, stdout, stderr }));
  });
}

// Clusters started by this process, and whether one is starting: a Ctrl-C (or SIGTERM) removes them before
// the process exits, as the test's after() hooks would not run. A start-up in progress tears itself down
// (up.sh traps the same signal), so the handler only waits for it to fail.
const running = new Set<Cluster>();
let starting = 0;
let interruptHandled = false;
function onInterrupt(signal: NodeJS.Signals): void {
  if (interruptHandled) return;
  if (starting > 0 && running.size === 0) return;
  interruptHandled = true;
  for (const cluster of running) {
    try {
      // In its own session: the test runner may kill this process's group before the teardown is done.
      execFileSync('setsid', [join(CLUSTER_SCRIPTS, 'down.sh'), cluster.state], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
    } catch {
      // down.sh has printed what it left behind; the other clusters still go.
    }
  }
  process.exit(signal === 'SIGINT' ? 130 : 143);
}
function watchInterrupts(): void {
  if (!process.listeners('SIGINT').includes(onInterrupt)) {
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onInterrupt);
  }
}

export interface ClusterNode {
  name: string;
  ip: string;
  netnsPath: string;
  dir: string;
  kubeletPidFile: string;
}

export class Cluster {
  private constructor(
    /** The state folder: PKI, kubeconfigs, logs, pids, wrappers. */
    readonly state: string,
    private readonly meta: Record<string, string>,
    private readonly onLog: (line: string) => void,
  ) {}

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const onLog = opts.onLog ?? (() => undefined);
    const args = [
      ...(opts.controlPlaneOnly === true ? ['--control-plane-only'] : ['--nodes', String(opts.nodes ?? 1)]),
      ...(opts.images ?? []).flatMap((i) => ['--image', i]),
    ];
    watchInterrupts();
    starting++;
    const up = await runScript('up.sh', args, onLog).finally(() => starting--);
    const state = up.stdout.trim().split('\n').pop() ?? '';
    if (up.code !== 0 || state === '') throw new Error(`test/e2e/cluster/up.sh failed (exit ${up.code}); its log:\n${up.stderr.slice(-4000)}`);
    const meta = Object.fromEntries(
      readFileSync(join(state, 'meta.sh'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('='))
        // Lists are space-separated in double quotes (the file is also sourced by bash).
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^"(.*)"$/, '$1')]),
    );
    const cluster = new Cluster(state, meta, onLog);
    running.add(cluster);
    return cluster;
  }

  /** The admin kubeconfig (client certificate in system:masters), for processes in the node's namespace. */
  get kubeconfig(): string {
    return this.field('KUBECONFIG');
  }
  /** The network namespace holding every process (mount path under /run/netns). */
  get netnsPath(): string {
    return this.field('E2E_NETNS_PATH');
  }
  get netns(): string {
    return this.field('E2E_NETNS');
  }
  /** The node's address in that namespace; the API server listens on it and on 127.0.0.1, port 6443. */
  get nodeIp(): string {
    return this.field('E2E_NODE_IP');
  }
  get nodeName(): string {
    return this.field('E2E_NODE_NAME');
  }
  /**
   * The real nodes, the first one first: its name, address, network namespace (mount path), state folder
   * (holding its `ctr` wrapper) and the file with its kubelet's PID.
   */
  get nodes(): ClusterNode[] {
    const list = (key: string): string[] => this.field(key).split(' ').filter((v) => v !== '');
    const [names, ips, netnses, dirs] = [list('E2E_NODE_NAMES'), list('E2E_NODE_IPS'), list('E2E_NODE_NETNSES'), list('E2E_NODE_DIRS')];
    return names.map((name, i) => ({
      name,
      ip: ips[i] ?? '',
      netnsPath: `/run/netns/${netnses[i] ?? ''}`,
      dir: dirs[i] ?? '',
      kubeletPidFile: join(this.state, 'pids', i === 0 ? 'kubelet' : `kubelet-${i + 1}`),
    }));
  }
  /** The folder of the built binaries (kubectl, etcdctl...). */
  get binDir(): string {
    return this.field('E2E_BIN');
  }

  /** kubectl as admin, run in the node's namespace. */
  kubectl(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
    return run(join(this.state, 'kubectl'), args, opts);
  }

  /** Like kubectl, but rejects with kubectl's output when it fails. */
  async kubectlOk(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** A command in the (first) node's network namespace, or NETNS_PATH's (host mounts, as the cluster's processes). */
  inNetns(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string; netnsPath?: string } = {}): Promise<CommandResult> {
    return run('nsenter', [`--net=${opts.netnsPath ?? this.netnsPath}`, cmd, ...args], opts);
  }

  /**
   * Writes a kubeconfig authenticating as ServiceAccount NAMESPACE/NAME with a token the API server mints
   * (`kubectl create token`), for SERVER (default https://127.0.0.1:6443, valid inside the node's
   * namespace; pass https://<nodeIp>:6443 for clients in namespaces routed to it). Returns its path.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, server?: string): Promise<string> {
    const out = await runScript('sa-kubeconfig.sh', [this.state, namespace, name, ...(server === undefined ? [] : [server])], this.onLog);
    if (out.code !== 0) throw new Error(`sa-kubeconfig.sh ${namespace} ${name} failed: ${out.stderr}`);
    return out.stdout.trim();
  }

  /** Tears everything down; rejects with the script's list of leftovers if anything remains. */
  async stop(): Promise<void> {
    running.delete(this);
    const down = await runScript('down.sh', [this.state], this.onLog);
    if (down.code !== 0) throw new Error(`test/e2e/cluster/down.sh left things behind:\n${down.stderr}`);
  }

  private field(key: string): string {
    const v = this.meta[key];
    if (v === undefined) throw new Error(`${join(this.state, 'meta.sh')} has no ${key}`);
    return v;
  }
}
