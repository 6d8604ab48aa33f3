// Keeps netpol-agent-cni chained while the agent runs: a main CNI that rewrites its configuration (flannel's
// install-cni when its pod restarts, a cloud CNI's upgrade) drops our entry, and until now the entry came
// back only with the agent pod's next start (its init container runs cni-install). The watcher re-inserts
// the entry cni-install wrote whenever the configuration in use lacks it.
//
// - Level, not event: each inotify event of the directory, and a periodic resync (an inotify watch misses
//   a directory replaced as a whole), runs one check of the directory as it is; a check is idempotent, so
//   our own rewrite wakes it once more and changes nothing.
// - The entry is the one found in the configuration (learned at start and at each check that finds it),
//   so the settings stay those of cni-install.
// - cni-uninstall leaves UNINSTALL_MARKER in the directory before it removes the entry: the watcher then
//   stops putting it back (cni-install removes the marker).
import { existsSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import { UNINSTALL_MARKER, chainPlugin, chainedEntry } from './install';

type Json = Record<string, unknown>;

/** What one check found. */
export type ConfCheck =
  | { readonly state: 'chained'; readonly confFile: string | null }
  | { readonly state: 'rechained'; readonly confFile: string }
  | { readonly state: 'uninstalled' }
  | { readonly state: 'no-entry-known' }
  | { readonly state: 'unreadable'; readonly reason: string };

export interface ConfWatcherOptions {
  /** The host's CNI configuration directory, mounted into the agent's container. */
  readonly confDir: string;
  readonly logger: Logger;
  /** The periodic check besides the directory's events (default 60 s). */
  readonly resyncPeriodMs?: number;
  /** Called after each check with what it found. */
  readonly onCheck?: (check: ConfCheck) => void;
}

export class ConfWatcher {
  private entry: Json | null = null;
  private watcher: FSWatcher | null = null;
  private resync: NodeJS.Timeout | null = null;
  private pending = false;
  private last: ConfCheck['state'] | null = null;

  constructor(private readonly options: ConfWatcherOptions) {}

  /**
   * Checks once now, then at each change of the directory and every resync period. The watch is armed
   * before the first check, so a rewrite during that check wakes another.
   */
  start(): ConfCheck {
    const dir = this.options.confDir;
    this.watcher = watch(dir, () => this.schedule());
    this.watcher.on('error', (err) => this.options.logger.warn({ err, confDir: dir }, `CNI configuration directory ${dir}: watch failed (${errorMessage(err)}); checking every resync period only`));
    const periodMs = this.options.resyncPeriodMs ?? 60_000;
    this.resync = setInterval(() => this.schedule(), periodMs);
    this.resync.unref();
    const first = this.check();
    this.options.logger.info({ confDir: dir }, `watching ${dir}: netpol-agent-cni is chained again whenever the configuration in use lacks it (at each change, and every ${periodMs / 1000} s)`);
    return first;
  }

  close(): void {
    this.watcher?.close();
    if (this.resync !== null) clearInterval(this.resync);
    this.watcher = null;
    this.resync = null;
  }

  /** A burst of events (a write, a rename) makes one check, after the events of this turn. */
  private schedule(): void {
    if (this.pending || this.watcher === null) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (this.watcher !== null) this.check();
    });
  }

  private check(): ConfCheck {
    const result = this.inspect();
    this.report(result);
    this.options.onCheck?.(result);
    return result;
  }

  private inspect(): ConfCheck {
    const dir = this.options.confDir;
    try {
      if (existsSync(join(dir, UNINSTALL_MARKER))) return { state: 'uninstalled' };
      const found = chainedEntry(dir);
      if (found !== null) {
        this.entry = found;
        return { state: 'chained', confFile: null };
      }
      if (this.entry === null) return { state: 'no-entry-known' };
      const { confFile, confChanged } = chainPlugin(dir, this.entry);
      return confChanged ? { state: 'rechained', confFile } : { state: 'chained', confFile };
    } catch (err) {
      // A main CNI that writes its file in place may be read half-written: its next write wakes us again.
      return { state: 'unreadable', reason: errorMessage(err) };
    }
  }

  private report(check: ConfCheck): void {
    const log = this.options.logger;
    const dir = this.options.confDir;
    if (check.state === 'rechained') log.warn({ confFile: check.confFile }, `CNI configuration ${check.confFile} was rewritten without netpol-agent-cni: chained it again, so new pods keep waiting for their rules`);
    else if (check.state === this.last) return;
    else if (check.state === 'uninstalled') log.info({ confDir: dir }, `${dir}: netpol-agent-cni is being uninstalled (${UNINSTALL_MARKER}); it is not chained again`);
    else if (check.state === 'no-entry-known') log.warn({ confDir: dir }, `${dir}: the CNI configuration in use does not chain netpol-agent-cni and the agent has not seen its entry; run netpol-agent cni-install (the init container of manifests/cni) to chain it`);
    else if (check.state === 'unreadable') log.warn({ confDir: dir }, `${dir}: cannot check the CNI configuration (${check.reason}); checking again at its next change`);
    this.last = check.state;
  }
}
