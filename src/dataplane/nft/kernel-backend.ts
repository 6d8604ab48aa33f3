// KernelNftBackend: NftBackend over libnftables through the nftables-napi addon.
//
// - run/check send tx.toString() as one batch: nft applies it in one netlink
//   transaction, so it is atomic.
// - Always the async path (NftContext.run/check on the addon's worker), never
//   runSync, even for one-line batches: libnftables fetches its cache of the
//   ruleset before applying (element adds to interval sets need the set's
//   contents), so the time a call takes grows with the size of the table, not
//   of the batch, and would block the event loop that long.
// - check() runs the dry run in a context of its own, opened for that check
//   and closed after it: libnftables 1.0.6 keeps what a dry run evaluated in
//   the context's cache (the kernel generation does not change, so the cache
//   is not refreshed), and a later run on the same context then fails against
//   objects that never existed ("interval overlaps with an existing one" for
//   elements of a set created by the checked batch). Fixed upstream by
//   dropping the cache in check mode (nft 1.0.7+); reproduced by
//   test/netns/nft-agreement.test.ts.
// - list() is `list table inet NAME` as JSON (parse-json.ts); a missing table
//   lists as null.
// - Calls on the context go through a queue of two priorities (ContextQueue):
//   listCounters(), the debug reads, waits for every write queued before it
//   starts. The addon runs a context's calls first in, first out, and
//   libnftables serializes calls of every context of the process (nftctx.c), so
//   neither a call handed to the addon nor a second context for reads could let
//   a commit overtake a listing: the addon is only ever given one call at a time.
//   A listing already running still holds libnftables to its end; listCounters()
//   is terse to keep that short (20,000 pods: 0.3-0.5 s instead of 2.4 s).
// - NftError messages are mapped onto the fake's codes (mapNftError).

import { NftApplyError, NftClosedError, NftValidationError, type NftApplyErrorCode, type OpSummary } from './errors';
import type { NftBackend, TableSnapshot } from './backend';
import { listTableCommand } from './objects';
import { parseTableJson } from './parse-json';
import { Transaction } from './transaction';
import { isRecord } from '../../json';

/** What this backend needs of nftables-napi's NftContext. */
export interface NftContextLike {
  run(batch: string): Promise<void>;
  check(batch: string): Promise<void>;
  /** `terse`: sets and maps without their elements, which libnftables then does not fetch (nft -t). */
  list(command: string, options?: { readonly terse?: boolean }): Promise<unknown>;
  close(): void;
}

export interface KernelBackendOptions {
  /** The inet table the agent owns. */
  readonly table: string;
  /** Network namespace for the context (as nftables-napi takes it); default: the process's own. */
  readonly netns?: string;
  /** An open context to use instead of loading nftables-napi (tests). */
  readonly context?: NftContextLike;
  /**
   * Opens a fresh context for each check() (see above). Default: nftables-napi
   * in `netns` when no `context` was given; with a `context` and no opener,
   * checks use that context, cache caveat included.
   */
  readonly openCheckContext?: () => NftContextLike;
}

function isContext(x: unknown): x is NftContextLike {
  return isRecord(x) && ['run', 'check', 'list', 'close'].every((m) => typeof x[m] === 'function');
}

/** Loads nftables-napi and opens an NftContext (in `netns` if given). */
export function openNftContext(netns?: string): NftContextLike {
  // Loaded lazily so that everything else in this folder works without the addon.
  const mod: unknown = require('nftables-napi');
  const Ctor = isRecord(mod) ? mod['NftContext'] : undefined;
  if (typeof Ctor !== 'function') throw new TypeError('nftables-napi does not export NftContext');
  const ctx: unknown = Reflect.construct(Ctor, netns === undefined ? [] : [{ netns }]);
  if (!isContext(ctx)) throw new TypeError('nftables-napi NftContext lacks run/check/list/close');
  return ctx;
}

/** The nftables-napi NftError fields we use (narrowed from unknown). */
interface NftErrorLike {
  readonly code: string;
  readonly nftMessage: string;
  /** The line(s) nft pointed at, one per line. */
  readonly command: string;
  readonly errno?: number;
}

function asNftError(err: unknown): NftErrorLike | null {
  if (!(err instanceof Error) || !isRecord(err)) return null;
  const code = err['code'];
  const nftMessage = err['nftMessage'];
  if (code !== 'NFT_COMMAND_FAILED' || typeof nftMessage !== 'string') return null;
  const errno = err['errno'];
  const command = err['command'];
  return { code, nftMessage, command: typeof command === 'string' ? command : '', ...(typeof errno === 'number' ? { errno } : {}) };
}

const ERRNO_CODES: Readonly<Record<number, NftApplyErrorCode>> = { 2: 'ENOENT', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL' };

/**
 * The code for nft's error text. Kernel errors come as strerror text; some
 * checks are nft's own, with their own words:
 *   ENOENT: "No such file or directory" (kernel, and nft's cache lookups),
 *           "element does not exist" (nft, delete in an interval set);
 *   EEXIST: "File exists" (kernel), "interval overlaps with an existing one"
 *           and "conflicting intervals specified" (nft, interval sets);
 *   EBUSY:  "Device or resource busy";
 *   EINVAL: everything else ("Invalid argument", "Operation not supported",
 *           "Too many links", datatype mismatches, syntax errors).
 */
export function classifyNftMessage(message: string, errno?: number): NftApplyErrorCode {
  if (/No such file or directory|element does not exist/.test(message)) return 'ENOENT';
  if (/File exists|interval overlaps with an existing one|conflicting intervals specified/.test(message)) return 'EEXIST';
  if (/Device or resource busy/.test(message)) return 'EBUSY';
  return (errno === undefined ? undefined : ERRNO_CODES[errno]) ?? 'EINVAL';
}

/**
 * The failing operation. nft names the position as `<batch>:LINE:COL-COL:
 * Error: ...` (a one-line batch has no prefix), then echoes the line and
 * underlines the culprit with carets; the column picks the element in a line
 * of several. Without a line number, the echoed line is looked up in the batch.
 */
function locateOp(e: NftErrorLike, tx: Transaction | null): OpSummary | null {
  if (tx === null) return null;
  if (tx.operations.length === 1) return tx.operations[0]?.summary ?? null;
  const lines = e.nftMessage.split('\n');
  const at = lines.findIndex((l) => l.includes('Error:'));
  if (at < 0) return null;
  const m = /:(\d+):(\d+)(?:-\d+)?: Error:/.exec(lines[at] ?? '');
  const caret = (lines[at + 2] ?? '').indexOf('^');
  const column = m !== null ? Number(m[2]) : caret >= 0 ? caret + 1 : undefined;
  let line = m !== null ? Number(m[1]) : undefined;
  if (line === undefined) {
    const echoed = (lines[at + 1] ?? e.command.split('\n')[0] ?? '').trim();
    const index = tx.batchLines().findIndex((l) => l.text === echoed);
    if (index >= 0) line = index + 1;
  }
  return line === undefined ? null : (tx.locate(line, column)?.summary ?? null);
}

/**
 * An NftApplyError for a failed nft command (with the failing op when it can
 * be found), or `err` itself when it is not a command failure (closed
 * context, netns errors, bugs).
 */
export function mapNftError(err: unknown, tx: Transaction | null): unknown {
  const e = asNftError(err);
  if (e === null) return err;
  const first = e.nftMessage.split('\n').find((l) => l.includes('Error:')) ?? e.nftMessage.split('\n')[0] ?? '';
  const text = first.replace(/^.*?Error:\s*/, '');
  return new NftApplyError(classifyNftMessage(e.nftMessage, e.errno), text, locateOp(e, tx), {
    cause: err,
    ...(e.errno === undefined ? {} : { errno: e.errno }),
  });
}

/** Which calls go first: a write (commit, check, a reconcile's listing) before any read waiting. */
type ContextPriority = 'write' | 'read';

/**
 * Calls on one context, one at a time: writes waiting go before reads waiting, each priority in call
 * order. A call already started runs to its end (libnftables cannot be interrupted).
 */
class ContextQueue {
  readonly #waiting: Record<ContextPriority, (() => void)[]> = { write: [], read: [] };
  #busy = false;

  run<T>(priority: ContextPriority, call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting[priority].push(() => {
        new Promise<T>((started) => started(call()))
          .then(resolve, reject)
          .finally(() => {
            this.#busy = false;
            this.#next();
          });
      });
      this.#next();
    });
  }

  #next(): void {
    if (this.#busy) return;
    const start = this.#waiting.write.shift() ?? this.#waiting.read.shift();
    if (start === undefined) return;
    this.#busy = true;
    start();
  }
}

export class KernelNftBackend implements NftBackend {
  readonly table: string;
  readonly #ctx: NftContextLike;
  readonly #queue = new ContextQueue();
  readonly #openCheckContext: (() => NftContextLike) | null;
  #closed = false;

  constructor(opts: KernelBackendOptions) {
    this.table = opts.table;
    this.#ctx = opts.context ?? openNftContext(opts.netns);
    const netns = opts.netns;
    this.#openCheckContext = opts.openCheckContext ?? (opts.context === undefined ? () => openNftContext(netns) : null);
  }

  newTransaction(): Transaction {
    return new Transaction(this.table);
  }

  async run(tx: Transaction): Promise<void> {
    const batch = this.#batch(tx);
    if (batch === '') return;
    try {
      await this.#queue.run('write', () => this.#ctx.run(batch));
    } catch (err) {
      throw mapNftError(err, tx);
    }
  }

  async check(tx: Transaction): Promise<void> {
    const batch = this.#batch(tx);
    if (batch === '') return;
    const ctx = this.#openCheckContext === null ? this.#ctx : this.#openCheckContext();
    try {
      // A context of its own needs no turn in the queue of the main one.
      await (ctx === this.#ctx ? this.#queue.run('write', () => ctx.check(batch)) : ctx.check(batch));
    } catch (err) {
      throw mapNftError(err, tx);
    } finally {
      if (ctx !== this.#ctx) ctx.close();
    }
  }

  list(): Promise<TableSnapshot | null> {
    return this.#list('write', false);
  }

  /**
   * Terse: the sets come without their elements. Counters are on chain rules, and at 20,000 pods the
   * elements are most of the table: a listing of 75,000 elements took 2.4 s, holding libnftables (and
   * so every commit) that long; terse, libnftables does not even fetch them from the kernel.
   */
  listCounters(): Promise<TableSnapshot | null> {
    return this.#list('read', true);
  }

  async #list(priority: ContextPriority, terse: boolean): Promise<TableSnapshot | null> {
    this.#assertOpen();
    let doc: unknown;
    try {
      doc = await this.#queue.run(priority, () => this.#ctx.list(listTableCommand(this.table), terse ? { terse } : undefined));
    } catch (err) {
      const mapped = mapNftError(err, null);
      if (mapped instanceof NftApplyError && mapped.nftCode === 'ENOENT') return null;
      throw mapped;
    }
    // The addon gives null when nft printed nothing; `list table` of an existing table always prints.
    return doc === null ? null : parseTableJson(doc, this.table);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new NftClosedError(`KernelNftBackend(${this.table})`);
  }

  #batch(tx: Transaction): string {
    this.#assertOpen();
    if (tx.table !== this.table) throw new NftValidationError('table', tx.table, `this backend owns table ${this.table}`);
    if (tx.error !== null) throw tx.error;
    return tx.toString();
  }
}
