// The typed nftables layer: the only place in the product that writes nft text.
//
//   const tx = new Transaction('netpol');
//   tx.add({ kind: 'table' });
//   tx.add({ kind: 'set', name: 'pods4', type: ['ipv4_addr'], flags: ['interval'] });
//   tx.add({ kind: 'element', set: 'pods4', key: ['10.0.0.0/24'], comment: 'ns/pod' });
//   tx.add({ kind: 'rule', chain: 'ingress', body: [matchSet(['ip saddr'], 'pods4'), accept()], comment: 'np:ns/p/0' });
//   await backend.run(tx); // throws NftValidationError (nothing sent) or NftApplyError

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
  type KeyPart,
  type L4Protocol,
  type SetDatatype,
} from './objects';
export { Transaction, type Operation } from './transaction';
export { FakeNft } from './fake';
export { KernelNftBackend, openNftContext, mapNftError, classifyNftMessage, type KernelBackendOptions, type NftContextLike } from './kernel-backend';
export { parseTableJson } from './parse-json';
export { normalizeSnapshot, canonicalKeyPart } from './normalize';
