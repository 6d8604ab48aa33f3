// Child processes: `ip -batch` runs, sysctl, and commands inside a namespace, all with a deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { SandboxError } from './errors';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  input?: string;
  timeoutMs: number;
  /** Told about the child as soon as it exists (running=true), and again once it has exited. */
  track?: (child: ChildProcess, running: boolean) => void;
  /** Run in its own process group and kill the whole group at the deadline (for `sh -c` pipelines). */
  group?: boolean;
}

const STDIO_GRACE_MS = 500;

export function run(file: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: opts.group === true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined); // the command may exit before reading all input
    const timer = setTimeout(() => {
      timedOut = true;
      killChild(child, opts.group === true);
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      opts.track?.(child, false);
      reject(new SandboxError(`cannot run ${file}: ${err.message}`, { cause: err }));
    });
    let settled = false;
    const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.track?.(child, false);
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.on('close', settle);
    // A background process the command left behind may hold stdout open forever: stop reading soon after
    // the command itself has exited.
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        settle(code, signal);
      }, STDIO_GRACE_MS);
    });
    opts.track?.(child, true);
    child.stdin.end(opts.input ?? '');
  });
}

/** SIGKILLs a child, and its whole process group if it was started as a group leader. */
export function killChild(child: ChildProcess, group: boolean): void {
  try {
    if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  } catch {
    // already gone
  }
}

const IP_TIMEOUT_MS = 30_000;

/**
 * Runs `ip [-n NETNS] -batch -` with one command per line. `what` says what the lines were building
 * ("node n1 (namespace ...)"), so a failure names the object, the failing command and the kernel's answer.
 */
export async function ipBatch(netns: string | null, lines: readonly string[], what: string, force = false): Promise<void> {
  if (lines.length === 0) return;
  const args = [...(netns === null ? [] : ['-n', netns]), ...(force ? ['-force'] : []), '-batch', '-'];
  const res = await run('ip', args, { input: `${lines.join('\n')}\n`, timeoutMs: IP_TIMEOUT_MS });
  if (res.code === 0 || force) return;
  const m = /Command failed -:(\d+)/.exec(res.stderr);
  const line = m === null ? undefined : lines[Number(m[1]) - 1];
  const err = res.stderr.replace(/Command failed -:\d+\s*/g, '').trim();
  throw new SandboxError(
    `setting up ${what} failed${line === undefined ? '' : ` at \`ip ${netns === null ? '' : `-n ${netns} `}${line}\``}: ` +
      `${res.timedOut ? `ip did not finish within ${IP_TIMEOUT_MS} ms` : err || `ip exited with ${String(res.code ?? res.signal)}`}. ` +
      'Check that this runs as root with iproute2 installed.',
  );
}

/** Every process inside any of these namespaces (`ip netns pids`, one process for all of them). */
export async function pidsInNetns(names: readonly string[]): Promise<number[]> {
  if (names.length === 0) return [];
  const res = await run('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns pids ${n}\n`).join(''), timeoutMs: IP_TIMEOUT_MS });
  return res.stdout.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number);
}

/** Sets sysctls inside a namespace in one process. */
export async function sysctlIn(netns: string, settings: readonly string[], what: string): Promise<void> {
  if (settings.length === 0) return;
  const res = await run('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', ...settings], { timeoutMs: IP_TIMEOUT_MS });
  if (res.code !== 0) {
    throw new SandboxError(
      `setting sysctls for ${what} failed: ${res.stderr.trim() || `sysctl exited with ${String(res.code ?? res.signal)}`} ` +
        `(wanted ${settings.join(' ')}). Check that procps' sysctl is installed and this runs as root.`,
    );
  }
}

/** Runs fn over items with at most `limit` in flight; rejects with the first error once all settled. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let firstError: { err: unknown } | null = null;
  async function worker(): Promise<void> {
    while (next < items.length && firstError === null) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T);
      } catch (err) {
        if (firstError === null) firstError = { err };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, () => worker()));
  if (firstError !== null) throw (firstError as { err: unknown }).err;
  return results;
}
