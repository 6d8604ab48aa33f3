// How a NetworkPolicy that fails validation is enforced: it isolates the pods it selects in the
// directions it declares and allows nothing, so a typo never opens traffic the author meant to limit.
// When even its podSelector is unusable it selects every pod of its namespace; when its policyTypes
// cannot be read it isolates both directions.
import type { ObjectRef, PolicyState, Selector } from '../api';
import { parseNetworkPolicy } from '../parse';
import { isRecord } from '../json';

const EVERY_POD: Selector = { requirements: [] };

function usableSelector(ref: ObjectRef, podSelector: unknown): Selector | null {
  try {
    // The validator of the whole object, fed only the selector: the same rules, no copy of them.
    return parseNetworkPolicy({ metadata: { namespace: ref.namespace, name: ref.name }, spec: { podSelector } }).podSelector;
  } catch {
    return null; // unusable: the caller falls back to every pod of the namespace
  }
}

function declaredDirections(spec: Record<string, unknown>): { ingress: boolean; egress: boolean } {
  const types = spec['policyTypes'];
  if (types === undefined || types === null) {
    const egress = spec['egress'];
    return { ingress: true, egress: egress !== undefined && egress !== null };
  }
  if (Array.isArray(types) && types.length > 0 && types.every((t) => t === 'Ingress' || t === 'Egress')) {
    return { ingress: types.includes('Ingress'), egress: types.includes('Egress') };
  }
  return { ingress: true, egress: true };
}

/** The policy the agent enforces in place of an invalid one, and whether its podSelector was usable. */
export function failClosedPolicy(ref: ObjectRef, raw: unknown): { policy: PolicyState; selectorUsable: boolean } {
  const spec = isRecord(raw) && isRecord(raw['spec']) ? raw['spec'] : {};
  const selector = usableSelector(ref, spec['podSelector']);
  const { ingress, egress } = declaredDirections(spec);
  return {
    policy: {
      namespace: ref.namespace,
      name: ref.name,
      podSelector: selector ?? EVERY_POD,
      ingressIsolation: ingress,
      egressIsolation: egress,
      ingress: [],
      egress: [],
    },
    selectorUsable: selector !== null,
  };
}
