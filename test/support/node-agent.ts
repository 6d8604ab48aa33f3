// `netpol-agent run` as a process inside a sandbox node's network namespace, on a file datastore, with
// what the root tests do with it: start, stop (SIGTERM, as the kubelet does), GET its endpoint from
// inside the namespace (it listens on the namespace's loopback), wait for a condition with its log at hand.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Sandbox } from '../../src/sandbox';

/** The compiled CLI, for tests that run its other commands (rules, cleanup) too. */
export const AGENT_MAIN = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

export interface NodeAgentOptions {
  readonly node: string;
  readonly listen: string;
  readonly table: string;
  /** Flags after the node, datastore, listen and table ones. */
  readonly extraArgs?: readonly string[];
}

export class NodeAgent {
  /** Everything the agent processes started so far wrote (stdout and stderr). */
  log = '';

  /** `sandbox` and `datastore` are read at start: tests create them in before(). */
  constructor(private readonly sandbox: () => Sandbox, private readonly datastore: () => string, private readonly options: NodeAgentOptions) {}

  netns(): string {
    return this.sandbox().nodeNetnsName(this.options.node);
  }

  start(): ChildProcess {
    const { node, listen, table, extraArgs = [] } = this.options;
    const child = spawn('ip', ['netns', 'exec', this.netns(), process.execPath, AGENT_MAIN, 'run', '--node-name', node, '--datastore-file', this.datastore(), '--listen', listen, '--table', table, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => { this.log += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { this.log += d.toString(); });
    return child;
  }

  async stop(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return exited;
  }

  /** An HTTP GET from inside the node's namespace. */
  async get(path: string, accept = '*/*'): Promise<{ status: number; body: string }> {
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
