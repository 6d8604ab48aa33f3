// The parent's side of one helper process: start it in a namespace, send probes, stop it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { HelperConfig, HelperMessage, HelperNotServing, HelperProbeCommand } from './helper-protocol';
import { SandboxError } from './errors';
import type { ProbeOutcome, ProbeRequest } from './types';

const READY_TIMEOUT_MS = 30_000;
/** How much longer than the probe's own deadline we wait for the helper's answer. */
const ANSWER_GRACE_MS = 5_000;

export function helperScript(): string {
  const path = join(__dirname, 'pod-helper.js');
  if (!existsSync(path)) {
    throw new SandboxError(`the sandbox helper ${path} is missing: build the project (npm run build) before creating a sandbox`);
  }
  return path;
}

interface Pending {
  resolve: (r: { outcome: ProbeOutcome; detail: string }) => void;
  timer: NodeJS.Timeout;
}

export class HelperClient {
  readonly label: string;
  readonly pid: number;
  notServing: HelperNotServing[] = [];
  ready: Promise<void> = Promise.resolve();
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = '';
  private exited: Promise<void>;
  private exitText: string | null = null;

  private constructor(label: string, child: ChildProcessWithoutNullStreams) {
    this.label = label;
    this.child = child;
    this.pid = child.pid ?? -1;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-2000);
    });
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exitText = `exited (${code === null ? `signal ${String(signal)}` : `code ${code}`})${this.stderrTail.trim() === '' ? '' : `: ${this.stderrTail.trim()}`}`;
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.resolve({ outcome: 'error', detail: `the helper for ${label} ${this.exitText}` });
          this.pending.delete(id);
        }
        resolve();
      });
    });
  }

  /** Starts the helper in `netns`; `ready` settles once it serves its ports (or could not start). */
  static spawn(netns: string, config: HelperConfig, script: string): HelperClient {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, script, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Helpers do not keep the parent alive: a program that ends without destroy() still exits, and the
    // exit handler (cleanup.ts) removes the sandbox. Pending probes and start-up hold their own timers.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as Socket).unref();
    const client = new HelperClient(config.label, child);
    client.ready = new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new SandboxError(`the helper process for ${config.label} (namespace ${netns}) ${why}`));
      };
      const timer = setTimeout(() => fail(`did not report ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      child.on('error', (err) => fail(`could not be started: ${err.message}`));
      void client.exited.then(() => fail(client.exitText ?? 'exited'));
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let msg: HelperMessage;
        try {
          msg = JSON.parse(line) as HelperMessage;
        } catch {
          return;
        }
        if (msg.type === 'ready') {
          clearTimeout(timer);
          client.notServing = msg.notServing;
          resolve();
        } else if (msg.type === 'result') {
          const p = client.pending.get(msg.id);
          if (p !== undefined) {
            clearTimeout(p.timer);
            client.pending.delete(msg.id);
            p.resolve({ outcome: msg.outcome, detail: msg.detail });
          }
        }
      });
    });
    client.ready.catch(() => undefined); // awaited by whoever needs it; never an unhandled rejection
    return client;
  }

  probe(req: ProbeRequest): Promise<{ outcome: ProbeOutcome; detail: string }> {
    if (this.exitText !== null) {
      return Promise.resolve({ outcome: 'error', detail: `the helper for ${this.label} ${this.exitText}` });
    }
    const id = this.nextId++;
    const cmd: HelperProbeCommand = { id, toIp: req.toIp, port: req.port, protocol: req.protocol, timeoutMs: req.timeoutMs };
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ outcome: 'error', detail: `the helper for ${this.label} did not answer within ${req.timeoutMs + ANSWER_GRACE_MS} ms` });
      }, req.timeoutMs + ANSWER_GRACE_MS);
      this.pending.set(id, { resolve, timer });
      this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  get running(): boolean {
    return this.exitText === null;
  }

  /** Kills the helper and waits until it is gone (bounded: a SIGKILLed process exits promptly). */
  async stop(): Promise<void> {
    if (this.exitText === null) {
      // Waiting for the exit must keep the event loop alive (the child is unref'd while it runs).
      this.child.ref();
      for (const stream of [this.child.stdout, this.child.stderr]) (stream as Socket).ref();
      this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}
