// Last-resort teardown: if the process exits, or gets SIGINT/SIGTERM/SIGHUP, while sandboxes are alive,
// kill their child processes and delete their namespaces synchronously. destroy() is the normal path;
// this only makes sure nothing leaks when it is never reached.
import { execFileSync } from 'node:child_process';

export interface LiveSandbox {
  /** Every process this sandbox started that may still be running. */
  processIds(): number[];
  /** Every namespace this sandbox created (or was about to create). */
  netnsNames(): string[];
}

const live = new Set<LiveSandbox>();
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function ipBatchSync(lines: string[]): string {
  try {
    return execFileSync('ip', ['-force', '-batch', '-'], { input: lines.join(''), encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'], timeout: 30_000 });
  } catch (err) {
    // -force still runs every line; a missing namespace only makes the exit status non-zero
    const out = (err as { stdout?: unknown }).stdout;
    return typeof out === 'string' ? out : '';
  }
}

/** Kills (our children, then anything else still inside our namespaces) and deletes; never throws. */
export function teardownSync(s: LiveSandbox): void {
  for (const pid of s.processIds()) killQuietly(pid);
  const names = s.netnsNames();
  if (names.length === 0) return;
  const inside = ipBatchSync(names.map((n) => `netns pids ${n}\n`));
  for (const pid of inside.split(/\s+/).filter((x) => /^\d+$/.test(x))) killQuietly(Number(pid));
  ipBatchSync(names.map((n) => `netns del ${n}\n`));
}

function onExit(): void {
  for (const s of live) teardownSync(s);
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  onExit();
  uninstall();
  // Keep the signal's usual meaning: if nobody else handles it, die of it as if we had not listened.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

const signalHandlers = new Map<NodeJS.Signals, () => void>(SIGNALS.map((sig) => [sig, () => onSignal(sig)]));

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const [sig, h] of signalHandlers) process.on(sig, h);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const [sig, h] of signalHandlers) process.off(sig, h);
}

export function registerLive(s: LiveSandbox): void {
  live.add(s);
  install();
}

export function unregisterLive(s: LiveSandbox): void {
  live.delete(s);
  if (live.size === 0) uninstall();
}
