// Listings for debug reads in a process of their own. libnftables' calls are serialized across the
// whole process (nftctx.c), so a listing in the agent's process holds up every commit that arrives
// while it runs (0.3-0.5 s at 20,000 pods, terse). In a child process it runs beside the commits: the
// kernel serves a dump and a transaction at once, and libnftables fetches its cache again when a
// commit changed the table midway. The child is started at the first listing, started again after it
// died, and keeps the agent alive only while a listing is awaited.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** One listing asked of the child. */
export interface ListRequest {
  readonly id: number;
  readonly command: string;
  readonly terse: boolean;
}

/** What an NftError carries, across the process boundary (mapNftError reads these fields). */
export interface ListFailure {
  readonly message: string;
  readonly code?: string;
  readonly nftMessage?: string;
  readonly command?: string;
  readonly errno?: number;
}

export type ListReply = { readonly id: number; readonly doc: unknown } | { readonly id: number; readonly failure: ListFailure };

const READER_MAIN = join(__dirname, 'reader-main.js');

export class ReaderProcess {
  #child: ChildProcess | null = null;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve: (doc: unknown) => void; reject: (err: Error) => void }>();
  #closed = false;

  /** `netns`: as NftContext takes it; the child opens its context there. */
  constructor(private readonly netns?: string) {}

  list(command: string, options?: { readonly terse?: boolean }): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error('the listing process is closed'));
    const child = this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#awaited(child);
      child.send({ id, command, terse: options?.terse === true } satisfies ListRequest);
    });
  }

  /** The child's handles count for the event loop while a listing is awaited, and only then. */
  #awaited(child: ChildProcess): void {
    if (this.#pending.size > 0) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  }

  close(): void {
    this.#closed = true;
    this.#child?.kill();
    this.#child = null;
  }

  #start(): ChildProcess {
    if (this.#child !== null) return this.#child;
    const child = fork(READER_MAIN, this.netns === undefined ? [] : [this.netns], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.on('message', (reply: ListReply) => {
      const waiting = this.#pending.get(reply.id);
      if (waiting === undefined) return;
      this.#pending.delete(reply.id);
      this.#awaited(child);
      if ('doc' in reply) waiting.resolve(reply.doc);
      else waiting.reject(Object.assign(new Error(reply.failure.message), reply.failure));
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      for (const [id, waiting] of this.#pending) {
        this.#pending.delete(id);
        waiting.reject(new Error(`the listing process ended (${signal ?? `exit code ${code ?? '?'}`}) before it answered`));
      }
    });
    this.#child = child;
    return child;
  }
}
