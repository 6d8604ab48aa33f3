// The typed nftables layer: the only place in the product that writes nft text.
//
//   const tx = new Transaction('netpol_agent');        // one inet table, owned by the agent
//   tx.add({ kind: 'table' });
//   tx.add({ kind: 'set', name: 'peers4', type: ['ipv4_addr'], flags: ['interval'] });
//   tx.add({ kind: 'element', set: 'peers4', key: ['10.0.0.0/24'], comment: 'ns/pod' });
//   tx.add({ kind: 'rule', chain: 'in_ab12', body: [matchSet(['ip saddr'], 'peers4'), accept()], comment: 'np:ns/p/0' });
//   await backend.run(tx); // throws the first NftValidationError (nothing sent) or an NftApplyError
//
// - objects.ts: object types, name/comment/value validation, rule-token helpers, rendering.
// - transaction.ts: Transaction (first error kept; toString() is the batch sent).
// - backend.ts: NftBackend, TableSnapshot; kernel-backend.ts (nftables-napi) and fake.ts (FakeNft)
//   implement it and fail with the same NftApplyError codes (ENOENT/EEXIST/EBUSY/EINVAL).
// - parse-json.ts: `nft -j` listing -> TableSnapshot; normalize.ts: compare snapshots across backends.
// - values.ts: addresses, CIDRs, ranges, ports, protocols in nft's canonical text.

export type {
  NftBackend,
  TableSnapshot,
  ChainSnapshot,
  RuleSnapshot,
  SetSnapshot,
  MapSnapshot,
  ElementSnapshot,
  CounterSnapshot,
  CounterValues,
} from './backend';
export { findRuleByComment } from './backend';
export {
  NftValidationError,
  NftApplyError,
  NftClosedError,
  NftListError,
  isNotFound,
  isAlreadyExists,
  isBusy,
  formatOp,
  type NftApplyErrorCode,
  type OpSummary,
} from './errors';
export {
  FAMILY,
  MAX_NAME_LENGTH,
  MAX_COMMENT_LENGTH,
  MAX_ELEMENTS_PER_COMMAND,
  PRIORITY,
  isValidName,
  nameProblem,
  validateName,
  validateComment,
  RuleToken,
  ctState,
  matchAddress,
  matchSet,
  vmap,
  l4proto,
  port,
  icmpv6Type,
  icmpv6NeighborDiscovery,
  nfproto,
  iifname,
  oifname,
  counter,
  namedCounter,
  log,
  verdict,
  accept,
  drop,
  ret,
  jump,
  goto,
  type Verb,
  type Verdict,
  type Table,
  type Chain,
  type BaseChainSpec,
  type ChainType,
  type ChainHook,
  type ChainPolicy,
  type Rule,
  type NftSet,
  type NftMap,
  type SetFlag,
  type Element,
  type Counter,
  type NftObject,
  type ObjectKind,
  type MatchField,
  type AddressField,
  type CtState,
  type Icmpv6Type,
  type KeyPart,
  type L4Protocol,
  type SetDatatype,
} from './objects';
export { Transaction, type Operation } from './transaction';
export { FakeNft } from './fake';
export { KernelNftBackend, openNftContext, mapNftError, classifyNftMessage, type KernelBackendOptions, type NftContextLike } from './kernel-backend';
export { parseTableJson } from './parse-json';
export { normalizeSnapshot, canonicalKeyPart } from './normalize';
