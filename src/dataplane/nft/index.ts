// The typed nftables layer: the only place in the product that writes nft text.
//
//   const tx = new Transaction('netpol_agent');        // one inet table, owned by the agent
//   tx.add({ kind: 'table' });
//   tx.add({ kind: 'set', name: 'peers4', type: ['ipv4_addr'], flags: ['interval'] });
//   tx.add({ kind: 'element', set: 'peers4', key: ['10.0.0.0/24'] });
//   tx.add({ kind: 'rule', chain: 'in_ab12', body: [matchSet(['ip saddr'], 'peers4'), accept()] });
//   await backend.run(tx); // throws the first NftValidationError (nothing sent) or an NftApplyError
//
// - objects.ts: object types, name/value validation, rule-token helpers, rendering.
// - transaction.ts: Transaction (first error kept; toString() is the batch sent).
// - backend.ts: NftBackend, TableSnapshot; kernel-backend.ts (nftables-napi) implements it. The tests'
//   FakeNft (test/support/fake-nft.ts, with a packet evaluator) implements it too and fails with the
//   same NftApplyError codes.
// - parse-json.ts: `nft -j` listing -> TableSnapshot, whatever the table holds.
// - values.ts: addresses, CIDRs, ranges, ports, protocols in nft's canonical text.

export type { NftBackend, TableSnapshot, ChainSnapshot, RuleCounter, SetSnapshot, MapSnapshot, ElementSnapshot, ListedBase } from './backend';
export { NftValidationError, NftApplyError, NftClosedError, NftListError, type NftApplyErrorCode, type OpSummary } from './errors';
export {
  FOREIGN_KINDS,
  isValidName,
  RuleToken,
  ctState,
  matchSet,
  vmap,
  icmpv6Type,
  icmpv6NeighborDiscovery,
  counter,
  log,
  limit,
  verdict,
  accept,
  drop,
  ret,
  jump,
  type Verb,
  type Verdict,
  type Table,
  type Chain,
  type BaseChainSpec,
  type Rule,
  type NftSet,
  type SetFlag,
  type Element,
  type ForeignKind,
  type ForeignObject,
  type NftObject,
  type ObjectKind,
  type MatchField,
  type CtState,
  type Icmpv6Type,
  type KeyPart,
  type SetDatatype,
} from './objects';
export { Transaction, type Operation } from './transaction';
export { KernelNftBackend, openNftContext, mapNftError, classifyNftMessage, type KernelBackendOptions, type NftContextLike } from './kernel-backend';
export { parseTableJson } from './parse-json';
