// The contract between the dataplane and nftables: run a transaction atomically, check one, list the
// agent's table. KernelNftBackend (kernel-backend.ts) and the tests' FakeNft (test/support/fake-nft.ts)
// implement it and fail the same way (NftApplyError codes, see errors.ts).
//
// A listing describes whatever is in the table, including what the agent never writes (another
// hook, set flags, map value types, statements, object kinds): those are kept as text, so that they
// compare unequal to what the agent wants and get replaced, and never make the listing unreadable.

import type { ForeignKind, Verdict } from './objects';
import type { Transaction } from './transaction';

export interface NftBackend {
  /** The inet table this backend owns; transactions for another table are refused. */
  readonly table: string;
  /** Applies every operation or none. Throws the transaction's pending NftValidationError without sending anything, or an NftApplyError. */
  run(tx: Transaction): Promise<void>;
  /** Like run, but only checks that the transaction would apply; changes nothing. */
  check(tx: Transaction): Promise<void>;
  /** The owned table, or null when it does not exist. */
  list(): Promise<TableSnapshot | null>;
  /**
   * The owned table for a debug read of its rules' counters (/rules, /metrics): it waits for every
   * write (run, check, list) queued before it starts, so reads never delay enforcement by more than one
   * listing; sets and maps come without their elements.
   */
  listCounters(): Promise<TableSnapshot | null>;
  /** Releases the backend; later calls fail. */
  close(): void;
}

export interface ListedBase {
  readonly type: string;
  readonly hook: string;
  readonly priority: number;
  readonly policy: string;
  /** Devices of a netdev-style hook (ingress); absent for ours. */
  readonly devices?: readonly string[];
}

export interface ChainSnapshot {
  readonly name: string;
  /** Present for base chains. */
  readonly base?: ListedBase;
  /** Each rule's statements as the objects.ts helpers print them; an expression with no helper prints as `<foreign ...>`. */
  readonly rules: readonly string[];
  /**
   * Per rule (same index as `rules`): what its anonymous `counter` statement has counted, null for a
   * rule without one. Kept apart from the rule text, so a counter that moves never makes a rule
   * compare different from the one the agent wants.
   */
  readonly counters?: readonly (RuleCounter | null)[];
}

/** The values of a rule's anonymous counter. */
export interface RuleCounter {
  readonly packets: number;
  readonly bytes: number;
}

export interface ElementSnapshot {
  /** Canonical text of each key part ("10.0.0.0/24", "tcp", "80-90"): usable as Element.key. */
  readonly key: readonly string[];
  /** Verdict of a verdict-map element. */
  readonly value?: Verdict;
}

export interface SetSnapshot {
  readonly name: string;
  /** Datatypes of the key, one per concatenated field. */
  readonly type: readonly string[];
  /** As listed ("interval", but also "constant", "timeout", "dynamic" when someone else made it). */
  readonly flags: readonly string[];
  /** What else its listing carried that ours never does (a timeout, counters, a size, elements it could not read). */
  readonly foreign?: string;
  readonly elements: readonly ElementSnapshot[];
}

export interface MapSnapshot extends SetSnapshot {
  /** The value type: "verdict" for ours. */
  readonly value: string;
}

export interface TableSnapshot {
  readonly family: 'inet';
  readonly name: string;
  readonly chains: readonly ChainSnapshot[];
  /** Sets and maps share one namespace in nftables. */
  readonly sets: readonly SetSnapshot[];
  readonly maps: readonly MapSnapshot[];
  /** Objects of kinds the agent never creates (flowtables, named counters, quotas...). */
  readonly foreign: readonly { readonly type: ForeignKind | string; readonly name: string }[];
}
