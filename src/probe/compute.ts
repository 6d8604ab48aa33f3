// probe's question, answered on the compiled rule tables: for every ordered pair of pods and every
// port the destination declares, would a new connection be allowed? Egress is decided on the source's
// node table, ingress on the destination's, exactly where the dataplane enforces them.
import type { IpFamily, PodState, Protocol } from '../api';
import { NodeCompiler, objectKey } from '../compiler';
import { parseIp } from '../net/ip';
import { RuleState } from '../ruletable';
import type { Verdict } from '../ruletable';
import { hasFinished } from '../parse';
import { eventsBetween } from '../source';
import type { ClusterObjects } from '../source';

export interface ProbeFilter {
  readonly port?: number;
  readonly protocol?: Protocol;
  /** Which address family to probe for dual-stack pods; default: IPv4 when both have one. */
  readonly family?: IpFamily;
}

export interface ProbeCase {
  readonly from: string;
  readonly to: string;
  readonly fromIp: string;
  readonly toIp: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface ProbeResult {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly allowed: boolean;
  readonly reason: string;
}


function ipOfFamily(pod: PodState, family: IpFamily): string | undefined {
  return pod.ips.find((ip) => parseIp(ip)?.family === family);
}

/** The connections probe asks about, in a stable order. */
export function probeCases(objects: ClusterObjects, filter: ProbeFilter): ProbeCase[] {
  const pods = objects.pods
    .filter((p) => p.ips.length > 0 && !hasFinished(p))
    .sort((a, b) => (objectKey(a) < objectKey(b) ? -1 : 1));
  const cases: ProbeCase[] = [];
  for (const to of pods) {
    const ports = new Map<string, { port: number; protocol: Protocol }>();
    for (const p of to.ports) {
      if (filter.port !== undefined && p.port !== filter.port) continue;
      if (filter.protocol !== undefined && p.protocol !== filter.protocol) continue;
      ports.set(`${p.port}/${p.protocol}`, { port: p.port, protocol: p.protocol });
    }
    const sortedPorts = [...ports.values()].sort((a, b) => a.port - b.port || (a.protocol < b.protocol ? -1 : 1));
    for (const from of pods) {
      const families: IpFamily[] = filter.family !== undefined ? [filter.family] : [4, 6];
      const family = families.find((f) => ipOfFamily(from, f) !== undefined && ipOfFamily(to, f) !== undefined);
      if (family === undefined) continue;
      const fromIp = ipOfFamily(from, family) as string;
      const toIp = ipOfFamily(to, family) as string;
      for (const { port, protocol } of sortedPorts) cases.push({ from: objectKey(from), to: objectKey(to), fromIp, toIp, port, protocol });
    }
  }
  return cases.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
}

/** Compiles one rule table per node named by the pods, from the same events the agent would see. */
export function compileNodes(objects: ClusterObjects): Map<string, NodeCompiler> {
  const compilers = new Map<string, NodeCompiler>();
  const events = eventsBetween(null, objects);
  for (const node of new Set(objects.pods.map((p) => p.nodeName))) {
    const compiler = new NodeCompiler(node);
    for (const e of events) compiler.apply(e);
    compilers.set(node, compiler);
  }
  return compilers;
}

function describe(v: Verdict, direction: 'ingress' | 'egress', pod: string): string {
  if (v.isolatedBy.length === 0) return `${direction} of ${pod} not isolated`;
  return `${direction} of ${pod} allowed by ${v.rule ?? '?'}`;
}

export function computeProbe(objects: ClusterObjects, filter: ProbeFilter): ProbeResult[] {
  const nodeOf = new Map(objects.pods.map((p) => [objectKey(p), p.nodeName]));
  const tables = new Map<string, RuleState>();
  for (const [node, compiler] of compileNodes(objects)) tables.set(node, RuleState.of(compiler.elements()));
  return decideCases(probeCases(objects, filter), (pod) => tables.get(nodeOf.get(pod) ?? '') as RuleState);
}

/** Each case decided on the rule tables of its pods' nodes: egress at the source's, ingress at the destination's. */
export function decideCases(cases: readonly ProbeCase[], tableOf: (pod: string) => RuleState): ProbeResult[] {
  return cases.map((c) => {
    const base = { from: c.from, to: c.to, port: c.port, protocol: c.protocol };
    if (c.from === c.to) {
      return { ...base, allowed: true, reason: 'loopback: a pod reaching itself never leaves its network namespace' };
    }
    const egress = tableOf(c.from).decide(c.from, 'egress', parseIp(c.toIp)!, c.protocol, c.port);
    const ingress = tableOf(c.to).decide(c.to, 'ingress', parseIp(c.fromIp)!, c.protocol, c.port);
    const target = `${c.protocol}/${c.port}`;
    if (!egress.allowed) {
      return { ...base, allowed: false, reason: `denied: egress of ${c.from} is isolated by ${egress.isolatedBy.join(', ')} and no egress rule allows ${c.to} (${c.toIp}) on ${target}` };
    }
    if (!ingress.allowed) {
      return { ...base, allowed: false, reason: `denied: ingress of ${c.to} is isolated by ${ingress.isolatedBy.join(', ')} and no ingress rule allows ${c.from} (${c.fromIp}) on ${target}` };
    }
    return { ...base, allowed: true, reason: `allowed: ${describe(egress, 'egress', c.from)}; ${describe(ingress, 'ingress', c.to)}` };
  });
}
