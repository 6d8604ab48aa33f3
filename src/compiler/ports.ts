import type { PodState, PortMatch, PortSpec } from '../api';

const ALL_PORTS_FROM = 1;
const ALL_PORTS_TO = 65535;

/**
 * The port matches of a rule. Named ports resolve against `owner` (the pod that serves them: the local
 * pod for ingress, the peer for egress); with no owner they are left out. A name the owner does not
 * declare for that protocol matches nothing.
 */
export function resolvePorts(specs: readonly PortSpec[] | null, owner: PodState | null): PortMatch[] {
  if (specs === null) return ['any'];
  const out: PortMatch[] = [];
  const seen = new Set<string>();
  const push = (m: PortMatch & object): void => {
    const k = `${m.protocol}/${m.from}-${m.to}`;
    if (!seen.has(k)) { seen.add(k); out.push(m); }
  };
  for (const spec of specs) {
    switch (spec.kind) {
      case 'number':
        push({ protocol: spec.protocol, from: spec.port, to: spec.endPort });
        break;
      case 'allPorts':
        push({ protocol: spec.protocol, from: ALL_PORTS_FROM, to: ALL_PORTS_TO });
        break;
      case 'named':
        for (const cp of owner?.ports ?? []) {
          if (cp.name === spec.name && cp.protocol === spec.protocol) push({ protocol: spec.protocol, from: cp.port, to: cp.port });
        }
        break;
    }
  }
  return out;
}
