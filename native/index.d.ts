// Hand-written types for nftables-napi (index.js). Keep in step with README.md.

export interface NftContextOptions {
  /**
   * Path of a network namespace file, such as `/run/netns/NAME` or
   * `/proc/PID/ns/net`. The context programs that namespace for its whole life.
   * Default: the network namespace of the thread that creates the context.
   */
  netns?: string;
}

export type NftErrorCode = 'NFT_COMMAND_FAILED' | 'NFT_CONTEXT_CLOSED' | 'NFT_NETNS' | 'NFT_NETLINK' | 'NFT_INTERNAL';

export class NftError extends Error {
  constructor(code: NftErrorCode, message: string, nftMessage: string, command: string, errno?: number);
  readonly name: 'NftError';
  /**
   * - `NFT_COMMAND_FAILED`: nft rejected the batch (syntax, evaluation or kernel error); nothing was applied.
   * - `NFT_CONTEXT_CLOSED`: the context was closed before this call.
   * - `NFT_NETNS`: the netns file could not be opened or is not a network namespace.
   * - `NFT_NETLINK`: no netfilter netlink socket could be opened in the namespace (errno: EMFILE,
   *   ENFILE, ENOMEM, ...); thrown by the constructor instead of letting libnftables exit the process.
   * - `NFT_INTERNAL`: Node-API refused to create or queue the async work; the command was not run.
   */
  readonly code: NftErrorCode;
  /** nft's own error output, verbatim except that the input is named `<batch>`; '' when nft said nothing. */
  readonly nftMessage: string;
  /**
   * The command line(s) nft pointed at, trimmed, one per line in batch order;
   * the whole batch when nft named no line; '' for NFT_NETNS.
   */
  readonly command: string;
  /** The errno named in nft's message (e.g. 2 for ENOENT, 17 for EEXIST), or of the netns or netlink socket failure. */
  readonly errno?: number;
}

export interface NftListOptions {
  /**
   * Terse output (`nft -t`): sets and maps are listed without their elements, and libnftables does
   * not fetch the elements from the kernel at all, so the listing costs what the chains hold.
   */
  terse?: boolean;
}

export class NftContext {
  /**
   * @throws {NftError} NFT_NETNS when options.netns cannot be entered; NFT_NETLINK when no
   * netfilter netlink socket can be opened there.
   */
  constructor(options?: NftContextOptions);
  /** The netns path given to the constructor, or null for the process's own. */
  readonly netns: string | null;
  /**
   * Applies the batch as one netlink transaction, all or nothing (`nft -f` semantics).
   * Blocks the calling thread, also while an async job of this context is running.
   * @throws {NftError}
   */
  runSync(batch: string): void;
  /**
   * Same as runSync on the libuv thread pool. Jobs of one context run one at a
   * time in call order. Rejects with NftError.
   */
  run(batch: string): Promise<void>;
  /**
   * Dry run (NFT_CTX_DRY_RUN): the batch is evaluated and sent to the kernel,
   * which validates it and discards it. Changes nothing. Rejects with NftError.
   */
  check(batch: string): Promise<void>;
  /**
   * Runs a command (e.g. `list table inet foo`) with JSON output and resolves
   * to the parsed output (`{ nftables: [...] }`), or null if it printed nothing.
   */
  list(command: string, options?: NftListOptions): Promise<unknown>;
  /** Synchronous list(). @throws {NftError} */
  listSync(command: string, options?: NftListOptions): unknown;
  /**
   * Frees the nft context. Jobs already queued still run, and the context is
   * freed after the last one. Later calls throw (sync) or reject (async) with
   * NFT_CONTEXT_CLOSED. Idempotent. A context that is garbage-collected is freed too.
   */
  close(): void;
}

/** @internal Number of native nft contexts created and not yet freed, process-wide (for tests). */
export function liveContexts(): number;

/**
 * @internal Makes the next `create` async-work creations and the next `queue` async-work
 * queueings fail as if Node-API had refused them (for tests of those failure paths).
 */
export function injectFailures(create: number, queue: number): void;

/** One packet of an nfnetlink_log group, as NflogReader parses it (nflog.c). */
export interface NflogRecord {
  /** The log statement's prefix. */
  readonly prefix: string;
  /** 4 or 6; 0 when the payload was not IP (no addresses then). */
  readonly family: 0 | 4 | 6;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP, ...). */
  readonly protocol: number;
  readonly saddr?: string;
  readonly daddr?: string;
  /** -1 when the protocol has no ports or the packet is a later fragment. */
  readonly sport: number;
  readonly dport: number;
  /** Interface indexes (0: none). */
  readonly indev: number;
  readonly outdev: number;
  /** IP total length. */
  readonly length: number;
}

/**
 * Reads an nfnetlink_log group on a native thread, in the network namespace `netns`
 * (default: the process's), and calls `onRecords` on the JS thread with each batch and
 * the number of packets lost since the previous call (socket overrun, JS behind).
 * @throws Error with code 'NFLOG' and errno (EPERM: another socket of that namespace reads the group).
 */
export class NflogReader {
  constructor(options: { group: number; netns?: string }, onRecords: (records: NflogRecord[], lost: number) => void);
  readonly group: number;
  /** Stops the thread and closes the socket. Idempotent. */
  close(): void;
}
