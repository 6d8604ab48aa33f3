// The two errors of the nft layer. Each carries what it is about: the operation
// (index in the transaction, verb, object) and, for apply errors, the code the
// kernel would give. Callers narrow on `code`, a literal type.
//
// TODO(lead): when src/errors.ts lands with the AgentError base, make these
// extend it; the fields stay the same.

import type { ObjectKind, Verb } from './objects';

/** One operation of a transaction, as it appears in errors and logs. */
export interface OpSummary {
  /** Position of the operation in its transaction (0-based). */
  readonly index: number;
  readonly verb: Verb;
  readonly kind: ObjectKind | 'unknown';
  /** Human-readable name: "chain pod-x", "element s4 { 10.0.0.1 }", "rule input handle 7". */
  readonly name: string;
}

export function formatOp(op: OpSummary): string {
  return `#${op.index} ${op.verb} ${op.name}`;
}

/** An object failed validation before anything was sent: a bad name, comment, address, verb. */
export class NftValidationError extends Error {
  override readonly name = 'NftValidationError';
  readonly code = 'NFT_INVALID_OBJECT' as const;
  /** Which field was rejected ("name", "comment", "key[1]", "body[3]", "handle", ...). */
  readonly field: string;
  /** The offending value, as text (JSON-quoted when it is a string). */
  readonly value: string;
  /** The operation it belongs to; null when raised outside a transaction. */
  readonly op: OpSummary | null;
  /** Why the value was rejected. */
  readonly reason: string;
  readonly #raw: unknown;

  constructor(field: string, value: unknown, reason: string, op: OpSummary | null = null, options?: { cause?: unknown }) {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    super(`${op === null ? '' : formatOp(op) + ': '}invalid ${field} ${shown}: ${reason}`, options);
    this.field = field;
    this.value = shown;
    this.reason = reason;
    this.op = op;
    this.#raw = value;
  }

  /** The same error, attributed to an operation. */
  withOp(op: OpSummary): NftValidationError {
    return new NftValidationError(this.field, this.#raw, this.reason, op, { cause: this.cause });
  }
}

/**
 * What went wrong applying a transaction, in kernel terms. Both backends use
 * the same codes so that code written against the fake handles the kernel:
 *   ENOENT  an object (table, chain, set, map, counter, element, rule handle)
 *           that the operation needs does not exist;
 *   EEXIST  `create` of an existing object, `add` of a set with another
 *           definition, a map element with another value, or an interval
 *           element that overlaps an existing one;
 *   EBUSY   deleting a chain/set/map/counter still referenced, or changing a
 *           bound constant set;
 *   EINVAL  anything else the kernel or nft refused (type mismatch, element
 *           shape, unsupported change, loops).
 */
export type NftApplyErrorCode = 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL';

export const ERRNO: Readonly<Record<NftApplyErrorCode, number>> = { ENOENT: 2, EBUSY: 16, EEXIST: 17, EINVAL: 22 };

export class NftApplyError extends Error {
  override readonly name = 'NftApplyError';
  readonly code: NftApplyErrorCode;
  /** The failing operation when it could be identified. */
  readonly op: OpSummary | null;
  /** The error text as nft printed it (kernel) or would have (fake). */
  readonly nftMessage: string;
  /** errno when the failure came from the kernel with one. */
  readonly errno: number | undefined;

  constructor(
    code: NftApplyErrorCode,
    nftMessage: string,
    op: OpSummary | null,
    options?: { cause?: unknown; errno?: number },
  ) {
    super(`${code}: ${op === null ? '' : formatOp(op) + ': '}${nftMessage}`, options);
    this.code = code;
    this.op = op;
    this.nftMessage = nftMessage;
    this.errno = options?.errno;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof NftApplyError && err.code === 'ENOENT';
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof NftApplyError && err.code === 'EEXIST';
}

export function isBusy(err: unknown): boolean {
  return err instanceof NftApplyError && err.code === 'EBUSY';
}

/** A backend was used after close(). */
export class NftClosedError extends Error {
  override readonly name = 'NftClosedError';
  readonly code = 'NFT_BACKEND_CLOSED' as const;
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

/** `nft -j list` output that does not have the shape nft 1.0.6 prints. */
export class NftListError extends Error {
  override readonly name = 'NftListError';
  readonly code = 'NFT_LIST_UNPARSEABLE' as const;
  /** The JSON fragment that could not be read. */
  readonly fragment: string;
  constructor(reason: string, fragment: unknown) {
    const text = JSON.stringify(fragment) ?? String(fragment);
    super(`cannot read nft listing: ${reason}: ${text.length > 300 ? text.slice(0, 300) + '...' : text}`);
    this.fragment = text;
  }
}
