// Builders of plain Kubernetes objects for tests, and a one-call verdict through probe's engine path.
import type { Protocol } from '../../src/api';
import { computeProbe } from '../../src/probe';
import { decodeObjects } from '../../src/source';

export interface PodOptions {
  labels?: Record<string, string>;
  node?: string;
  ips?: string[];
  ports?: { name?: string; containerPort: number; protocol?: Protocol }[];
  hostNetwork?: boolean;
  phase?: string;
}

export function makeNamespace(name: string, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export function makePod(namespace: string, name: string, o: PodOptions = {}): object {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { namespace, name, labels: o.labels ?? {} },
    spec: { nodeName: o.node ?? 'node-1', hostNetwork: o.hostNetwork ?? false, containers: [{ name: 'c', ports: o.ports ?? [{ containerPort: 80 }] }] },
    status: { phase: o.phase ?? 'Running', podIPs: (o.ips ?? []).map((ip) => ({ ip })) },
  };
}

export function makePolicy(namespace: string, name: string, spec: object): object {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec };
}

/** The verdict probe gives for one connection (null when probe does not list that pair/port). */
export function verdict(objects: readonly object[], from: string, to: string, port: number, protocol: Protocol = 'TCP', family?: 4 | 6): boolean | null {
  const results = computeProbe(decodeObjects(objects, 'test'), { port, protocol, ...(family === undefined ? {} : { family }) });
  return results.find((r) => r.from === from && r.to === to)?.allowed ?? null;
}
