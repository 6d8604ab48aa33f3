// The contract between the dataplane and nftables: run a transaction
// atomically, check one, list the agent's table. KernelNftBackend
// (kernel-backend.ts) and FakeNft (fake.ts) implement it and fail the same way
// (NftApplyError codes, see errors.ts).

import type { BaseChainSpec, SetFlag, Verdict } from './objects';
import type { Transaction } from './transaction';

export interface NftBackend {
  /** The inet table this backend owns; transactions for another table are refused. */
  readonly table: string;
  /**
   * Applies every operation or none. Throws the transaction's pending
   * NftValidationError without sending anything, or an NftApplyError.
   */
  run(tx: Transaction): Promise<void>;
  /** Like run, but only checks that the transaction would apply; changes nothing. */
  check(tx: Transaction): Promise<void>;
  /** The owned table, or null when it does not exist. */
  list(): Promise<TableSnapshot | null>;
  /** Releases the backend; later calls fail. */
  close(): void;
}

export interface CounterValues {
  readonly packets: number;
  readonly bytes: number;
}

export interface RuleSnapshot {
  /** Kernel handle: use it for replace/delete. Values differ between backends. */
  readonly handle: number;
  /** The rule's statements as the objects.ts helpers print them ("ip saddr @s4 counter jump pod-x"); counter values omitted. */
  readonly body: string;
  readonly comment?: string;
}

export interface ChainSnapshot {
  readonly name: string;
  /** Present for base chains; the policy is always reported. */
  readonly base?: Required<BaseChainSpec>;
  readonly rules: readonly RuleSnapshot[];
}

export interface ElementSnapshot {
  /** Canonical text of each key part ("10.0.0.0/24", "tcp", "80-90"): usable as Element.key. */
  readonly key: readonly string[];
  /** Verdict of a verdict-map element. */
  readonly value?: Verdict;
  readonly comment?: string;
  /** Present when the set has `counter`. */
  readonly counter?: CounterValues;
}

export interface SetSnapshot {
  readonly name: string;
  /** Datatypes of the key, one per concatenated field. */
  readonly type: readonly string[];
  readonly flags: readonly SetFlag[];
  readonly counter: boolean;
  readonly comment?: string;
  readonly elements: readonly ElementSnapshot[];
}

export interface MapSnapshot extends SetSnapshot {
  readonly value: 'verdict';
}

export interface CounterSnapshot extends CounterValues {
  readonly name: string;
}

export interface TableSnapshot {
  readonly family: 'inet';
  readonly name: string;
  readonly chains: readonly ChainSnapshot[];
  readonly sets: readonly SetSnapshot[];
  readonly maps: readonly MapSnapshot[];
  readonly counters: readonly CounterSnapshot[];
}

/** The first rule of `chain` whose comment is `comment` (the dataplane's identity key for rules). */
export function findRuleByComment(snapshot: TableSnapshot, chain: string, comment: string): RuleSnapshot | undefined {
  return snapshot.chains.find((c) => c.name === chain)?.rules.find((r) => r.comment === comment);
}
