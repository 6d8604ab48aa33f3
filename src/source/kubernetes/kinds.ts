// The three kinds the agent watches: where the API serves them, how a raw object becomes the engine's
// record, and the events that carry it.
import type { ClusterEvent, ObjectKind, ObjectRef } from '../../api';
import { parseNamespace, parseNetworkPolicy, parsePod } from '../../parse';
import type { Json } from './api-client';

export interface KindSpec {
  readonly kind: ObjectKind;
  /** The resource and API group, as RBAC names them. */
  readonly resource: string;
  readonly group: string;
  /** The cluster-wide collection (every namespace). */
  readonly path: string;
  readonly namespaced: boolean;
  /** Reduces a raw object to the engine's record; throws InvalidObjectError when it fails validation. */
  upsert(raw: Json): ClusterEvent;
  delete(ref: ObjectRef): ClusterEvent;
}

export const KINDS: readonly KindSpec[] = [
  {
    kind: 'Namespace', resource: 'namespaces', group: '', path: '/api/v1/namespaces', namespaced: false,
    upsert: (raw) => ({ type: 'upsert', kind: 'Namespace', object: parseNamespace(raw) }),
    delete: (ref) => ({ type: 'delete', kind: 'Namespace', name: ref.name }),
  },
  {
    kind: 'Pod', resource: 'pods', group: '', path: '/api/v1/pods', namespaced: true,
    upsert: (raw) => ({ type: 'upsert', kind: 'Pod', object: parsePod(raw) }),
    delete: (ref) => ({ type: 'delete', kind: 'Pod', ref }),
  },
  {
    kind: 'NetworkPolicy', resource: 'networkpolicies', group: 'networking.k8s.io', path: '/apis/networking.k8s.io/v1/networkpolicies', namespaced: true,
    upsert: (raw) => ({ type: 'upsert', kind: 'NetworkPolicy', object: parseNetworkPolicy(raw) }),
    delete: (ref) => ({ type: 'delete', kind: 'NetworkPolicy', ref }),
  },
];

/** The identity fields of a raw object, read without validating the rest. */
export interface RawIdentity {
  readonly ref: ObjectRef;
  readonly key: string;
  readonly resourceVersion: string;
}

export function identityOf(spec: KindSpec, raw: Json): RawIdentity {
  const meta = typeof raw['metadata'] === 'object' && raw['metadata'] !== null ? (raw['metadata'] as Json) : {};
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const ref = { namespace: spec.namespaced ? str(meta['namespace']) : '', name: str(meta['name']) };
  return {
    ref,
    key: spec.namespaced ? `${ref.namespace}/${ref.name}` : ref.name,
    resourceVersion: str(meta['resourceVersion']),
  };
}

export function refOfKey(spec: KindSpec, key: string): ObjectRef {
  if (!spec.namespaced) return { namespace: '', name: key };
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
