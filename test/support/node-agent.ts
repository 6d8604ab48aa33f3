// `netpol-agent run` as a process inside a sandbox node's network namespace, on a file datastore, with
// what the root tests do with it: start, stop (SIGTERM, as the kubelet does), GET its endpoints (health
// and metrics from inside the namespace, where it listens on loopback; the debug ones on its unix
// socket, which a network namespace does not hide), wait for a condition with its log at hand.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DEBUG_PATHS, getOverSocket } from '../../src/agent';
import type { Sandbox } from '../../src/sandbox';

/** The compiled CLI, for tests that run its other commands (rules, cleanup) too. */
export const AGENT_MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface NodeAgentOptions {
  readonly node: string;
  readonly listen: string;
  readonly table: string;
  /** Flags after the node, datastore, listen, debug socket and table ones. */
  readonly extraArgs?: readonly string[];
}

export class NodeAgent {
  /** Everything the agent processes started so far wrote (stdout and stderr). */
  log = '';

  /** The debug socket, unique to this test process and node. */
  readonly debugSocket: string;

  /** `sandbox` and `datastore` are read at start: tests create them in before(). */
  constructor(private readonly sandbox: () => Sandbox, private readonly datastore: () => string, private readonly options: NodeAgentOptions) {
    this.debugSocket = join(tmpdir(), `netpol-agent-test-${process.pid}-${options.node}`, 'debug.sock');
  }

  netns(): string {
    return this.sandbox().nodeNetnsName(this.options.node);
  }

  start(): ChildProcess {
    const { node, listen, table, extraArgs = [] } = this.options;
    const child = spawn('ip', ['netns', 'exec', this.netns(), process.execPath, AGENT_MAIN, 'run', '--node-name', node, '--datastore-file', this.datastore(), '--metrics-listen', listen, '--debug-socket', this.debugSocket, '--table', table, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => { this.log += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { this.log += d.toString(); });
    return child;
  }

  /** SIGTERM; resolves with the exit code once it exited, its debug socket's directory removed. */
  async stop(child: ChildProcess): Promise<number | null> {
    const code = child.exitCode !== null ? child.exitCode : await new Promise<number | null>((r) => {
      child.once('exit', (c) => r(c));
      child.kill('SIGTERM');
    });
    rmSync(dirname(this.debugSocket), { recursive: true, force: true });
    return code;
  }

  /** An HTTP GET: on the debug socket for its paths, else from inside the node's namespace. */
  async get(path: string, accept = '*/*'): Promise<{ status: number; body: string }> {
    if (DEBUG_PATHS.includes(new URL(path, 'http://agent').pathname)) return getOverSocket(this.debugSocket, path, 10_000, accept);
    const script = 'fetch(process.argv[1],{headers:{accept:process.argv[2]}}).then(async r=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text()})),e=>process.stdout.write(JSON.stringify({status:0,body:String(e)})))';
    const res = await this.sandbox().exec(`node:${this.options.node}`, [process.execPath, '-e', script, `http://${this.options.listen}${path}`, accept], 10_000);
    return JSON.parse(res.stdout) as { status: number; body: string };
  }

  /** Resolves once /readyz answers 200 (the first sync is committed). */
  async waitReady(): Promise<void> {
    await this.waitFor(() => '/readyz', async () => ((await this.get('/readyz')).status === 200 ? true : null));
  }

  async waitFor<T>(what: () => string, fn: () => Promise<T | null>, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn().catch(() => null);
      if (v !== null) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what()}\nagent log:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
