// The cluster as the agent last heard it, indexed for questions about single packets: which pod owns
// an address, what a namespace's labels are, what a policy says. Fed by the same events as the agent
// loop (teeSink in src/agent/pipeline.ts), so it never lags behind what is enforced by more than the loop's own queue.
import type { ClusterEvent, NamespaceState, PodState, PolicyState } from '../api';
import { objectKey } from '../api';
import { hasFinished } from '../parse';
import type { ClusterObjects } from '../source';
import type { ExplainCluster } from './explain';

export class ClusterIndex implements ExplainCluster {
  private readonly pods = new Map<string, PodState>();
  /**
   * address -> the pod that last took it. An address reused by a new pod points at the new one (the
   * old one has finished); if the new one goes first, the address is unknown until a pod takes it.
   */
  private readonly byIp = new Map<string, string>();
  private readonly namespaces = new Map<string, NamespaceState>();
  private readonly policies = new Map<string, PolicyState>();
  /** namespace -> its policies by key. */
  private readonly policiesByNamespace = new Map<string, Map<string, PolicyState>>();

  apply(event: ClusterEvent): void {
    switch (event.kind) {
      case 'Namespace':
        if (event.type === 'upsert') this.namespaces.set(event.object.name, event.object);
        else this.namespaces.delete(event.name);
        break;
      case 'Pod': {
        const key = event.type === 'upsert' ? objectKey(event.object) : objectKey(event.ref);
        const before = this.pods.get(key);
        for (const ip of before?.ips ?? []) if (this.byIp.get(ip) === key) this.byIp.delete(ip);
        if (event.type === 'delete') {
          this.pods.delete(key);
          break;
        }
        this.pods.set(key, event.object);
        // A finished pod does not take an address back from a running one; a host-network pod has
        // its node's address, which is not the pod's.
        for (const ip of event.object.hostNetwork ? [] : event.object.ips) {
          const holder = this.byIp.get(ip);
          const held = holder === undefined || holder === key ? undefined : this.pods.get(holder);
          if (held === undefined || hasFinished(held) || !hasFinished(event.object)) this.byIp.set(ip, key);
        }
        break;
      }
      case 'NetworkPolicy': {
        const ref = event.type === 'upsert' ? event.object : event.ref;
        const key = objectKey(ref);
        const inNamespace = this.policiesByNamespace.get(ref.namespace) ?? new Map<string, PolicyState>();
        if (event.type === 'upsert') {
          this.policies.set(key, event.object);
          inNamespace.set(key, event.object);
        } else {
          this.policies.delete(key);
          inNamespace.delete(key);
        }
        if (inNamespace.size === 0) this.policiesByNamespace.delete(ref.namespace);
        else this.policiesByNamespace.set(ref.namespace, inNamespace);
        break;
      }
    }
  }

  /** The pod that holds `ip` ("namespace/name"), or null (not a pod: a node, an outside address). */
  podOf(ip: string): string | null {
    return this.byIp.get(ip) ?? null;
  }

  pod(key: string): PodState | undefined {
    return this.pods.get(key);
  }

  namespaceLabels(name: string): NamespaceState['labels'] | undefined {
    return this.namespaces.get(name)?.labels;
  }

  policiesIn(namespace: string): Iterable<PolicyState> {
    return this.policiesByNamespace.get(namespace)?.values() ?? [];
  }

  /** Everything known, in the shape probe and explain read. */
  objects(): ClusterObjects {
    return { namespaces: [...this.namespaces.values()], pods: [...this.pods.values()], policies: [...this.policies.values()], ignored: [] };
  }
}
