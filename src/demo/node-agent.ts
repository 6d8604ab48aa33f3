// One `netpol-agent run` process per sandbox node, started inside the node's network namespace the way
// a DaemonSet pod with hostNetwork runs on its node: it programs that namespace's nftables and serves
// health and metrics on that namespace's loopback, so every node's agent can use the same address. The
// debug socket is a file, which namespaces do not separate: each node's agent has its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Sandbox } from '../sandbox';
import { NODE_SOURCE_PREFIX, SandboxError } from '../sandbox';

/** The command line, as a user would run it (compiled to build/src/demo, three levels below bin/). */
export const CLI = join(__dirname, '..', '..', '..', 'bin', 'netpol-agent');
/** The agent's default --metrics-listen: each node's agent listens on its own namespace's loopback. */
export const AGENT_LISTEN = '127.0.0.1:9977';
const HTTP_SECONDS = 5;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 200;
const LOG_TAIL_CHARS = 2_000;

export class NodeAgent {
  readonly node: string;
  readonly netns: string;
  readonly logFile: string;
  /** The agent's debug socket (/rules), next to its log. */
  readonly debugSocket: string;
  /** The command that started it, as shown to the user. */
  readonly command: string;
  private readonly sandbox: Sandbox;
  private readonly child: ChildProcess;
  private exitText: string | null = null;
  private readonly exited: Promise<void>;

  private constructor(sandbox: Sandbox, node: string, datastore: string, logFile: string) {
    this.sandbox = sandbox;
    this.node = node;
    this.netns = sandbox.nodeNetnsName(node);
    this.logFile = logFile;
    this.debugSocket = join(dirname(logFile), `debug-${node}.sock`);
    const args = ['run', '--node-name', node, '--datastore-file', datastore, '--metrics-listen', AGENT_LISTEN, '--debug-socket', this.debugSocket];
    this.command = `ip netns exec ${this.netns} ${CLI} ${args.join(' ')}`;
    const log = openSync(logFile, 'a');
    try {
      this.child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, CLI, ...args], { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.exitText = `could not be started: ${err.message}`;
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        this.exitText = code === null ? `was killed by ${String(signal)}` : `exited with code ${code}`;
        resolve();
      });
    });
  }

  /** Starts the agent of `node`; its log (pino JSON lines) goes to `logFile`. */
  static start(sandbox: Sandbox, node: string, datastore: string, logDir: string): NodeAgent {
    return new NodeAgent(sandbox, node, datastore, join(logDir, `agent-${node}.log`));
  }

  get pid(): number | undefined {
    return this.exitText === null ? this.child.pid : undefined;
  }

  /** GET `path` from the agent over HTTP, from inside its namespace (busybox wget, bounded by timeout(1)). */
  async get(path: string): Promise<{ ok: boolean; body: string }> {
    const res = await this.sandbox.exec(`${NODE_SOURCE_PREFIX}${this.node}`, ['timeout', String(HTTP_SECONDS), 'busybox', 'wget', '-q', '-O', '-', `http://${AGENT_LISTEN}${path}`], (HTTP_SECONDS + 3) * 1000);
    return { ok: res.code === 0, body: res.stdout };
  }

  /** Polls `check` until it holds; fails with the agent's log tail if the agent exits or `ms` pass. */
  async waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.exitText !== null) throw this.failure(`${this.exitText} while the demo waited for ${what}`);
      if (await check()) return;
      if (Date.now() > deadline) throw this.failure(`did not reach "${what}" within ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** SIGTERM (the agent's clean stop), then SIGKILL if it is still running after a grace period. */
  async stop(): Promise<void> {
    if (this.exitText !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** For exit and signal handlers, which cannot wait. */
  killNow(): void {
    if (this.exitText === null) this.child.kill('SIGKILL');
  }

  private failure(problem: string): SandboxError {
    let tail = '';
    try {
      tail = readFileSync(this.logFile, 'utf8').slice(-LOG_TAIL_CHARS).trim();
    } catch {
      // no log yet
    }
    return new SandboxError(`the agent of node ${this.node} (${this.command}) ${problem}; its log ${this.logFile} ends with:\n${tail === '' ? '(empty)' : tail}`);
  }
}
