// The errors of the nft layer, members of the AgentError family (code 'NFT'). Each carries what it
// is about: the operation (index in the transaction, verb, object) and, for apply errors, the
// kernel's answer (nftCode, and errno when there was one).

import { AgentError } from '../../errors';
import type { ObjectKind, Verb } from './objects';

/** One operation of a transaction, as it appears in errors and logs. */
export interface OpSummary {
  /** Position of the operation in its transaction (0-based). */
  readonly index: number;
  readonly verb: Verb;
  readonly kind: ObjectKind | 'unknown';
  /** Human-readable name: "chain in_ab12", "element ingress_v4 { 10.0.0.1 }". */
  readonly name: string;
}

export function formatOp(op: OpSummary): string {
  return `#${op.index} ${op.verb} ${op.name}`;
}

/** An object failed validation before anything was sent: a bad name, address, verb. */
export class NftValidationError extends AgentError {
  /** Which field was rejected ("name", "key[1]", "body[3]", ...). */
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
    super('NFT', `${op === null ? '' : formatOp(op) + ': '}invalid ${field} ${shown}: ${reason}`, options);
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
 * What went wrong applying a transaction, in kernel terms. Both backends use the same codes so that
 * code written against the fake handles the kernel:
 *   ENOENT  an object (table, chain, set, map, element) the operation needs does not exist;
 *   EEXIST  `add` of a set with another definition, a map element with another value, or an
 *           interval element that overlaps an existing one;
 *   EBUSY   deleting a chain/set/map still referenced;
 *   EINVAL  anything else the kernel or nft refused (type mismatch, element shape, loops).
 */
export type NftApplyErrorCode = 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL';

export const ERRNO: Readonly<Record<NftApplyErrorCode, number>> = { ENOENT: 2, EBUSY: 16, EEXIST: 17, EINVAL: 22 };

export class NftApplyError extends AgentError {
  readonly nftCode: NftApplyErrorCode;
  /** The failing operation when it could be identified. */
  readonly op: OpSummary | null;
  /** The error text as nft printed it (kernel) or would have (fake). */
  readonly nftMessage: string;
  /** errno when the failure came from the kernel with one. */
  readonly errno: number | undefined;

  constructor(nftCode: NftApplyErrorCode, nftMessage: string, op: OpSummary | null, options?: { cause?: unknown; errno?: number }) {
    super('NFT', `${nftCode}: ${op === null ? '' : formatOp(op) + ': '}${nftMessage}`, options);
    this.nftCode = nftCode;
    this.op = op;
    this.nftMessage = nftMessage;
    this.errno = options?.errno;
  }
}

/** A backend was used after close(). */
export class NftClosedError extends AgentError {
  constructor(what: string) {
    super('NFT', `${what} is closed`);
  }
}

/** `nft -j list` output that is not even the shape of a listing (no "nftables" array). */
export class NftListError extends AgentError {
  /** The JSON fragment that could not be read. */
  readonly fragment: string;
  constructor(reason: string, fragment: unknown) {
    const text = JSON.stringify(fragment) ?? String(fragment);
    super('NFT', `cannot read nft listing: ${reason}: ${text.length > 300 ? text.slice(0, 300) + '...' : text}`);
    this.fragment = text;
  }
}
