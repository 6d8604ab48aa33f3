// What /rules shows: for each local pod, its isolation per direction, the rules that apply with their
// peers as written and as resolved, the nftables objects that implement them; the policies enforced
// fail-closed; and the sync status. JSON for tools, text for an operator to paste into an issue.
import type { Direction, LabelRequirement, PeerMatch, PolicyPeer, PolicyState, PortMatch, PortSpec, RuleTableElement, Selector } from '../api';
import { DIRECTIONS } from '../api';
import { buildRuleTable, portMatchText } from '../ruletable';
import type { NotEnforceable, RejectedObject, SyncStatus } from './agent-loop';
import type { DirectionCounters } from '../observe/counters';
import { COUNTER_GRANULARITY, formatDirectionCounters } from '../observe/counters';

/** What the report is built from (AgentLoop provides it). */
export interface RulesSource {
  readonly node: string;
  readonly table: string;
  status(): SyncStatus;
  elements(): Iterable<RuleTableElement>;
  /** One local pod's elements and the peers of its rules: all a query for one pod reads. */
  podElements(pod: string): Iterable<RuleTableElement>;
  policy(key: string): PolicyState | undefined;
  notEnforceableList(): NotEnforceable[];
  rejectedList(): RejectedObject[];
  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null;
}

export interface RulesQuery {
  /** "namespace/name" of a local pod. */
  readonly pod?: string;
  /** "namespace/name" of a policy. */
  readonly policy?: string;
  /** List resolved addresses, not only their number. */
  readonly verbose?: boolean;
}

export interface PeerGroupReport {
  /** null: the rule's own ports (as bound to the pod); otherwise the peers' own named port. */
  readonly port: string | null;
  readonly resolvedAddresses: number;
  readonly addresses?: readonly string[];
}

export interface RuleReport {
  readonly rule: string;
  readonly policy: string;
  /** The peers as written in the policy ("all peers" when it has none). */
  readonly peers: readonly string[];
  /** The ports as written ("all ports" when it has none). */
  readonly ports: readonly string[];
  /** The ports this rule allows this pod, resolved (named ports against its containers). */
  readonly resolvedPorts: readonly string[];
  readonly resolved: readonly PeerGroupReport[];
}

export interface DirectionReport {
  readonly isolated: boolean;
  readonly isolatedBy: readonly string[];
  /** The group chain and its sets; null when the pod is not isolated in this direction. */
  readonly nftables: { readonly chain: string; readonly sets: readonly string[] } | null;
  readonly rules: readonly RuleReport[];
  /** The kernel counters of its group chain (added when the agent serves /rules). */
  readonly counters?: DirectionCounters;
}

export interface PodReport {
  readonly pod: string;
  readonly ips: readonly string[];
  readonly ingress: DirectionReport;
  readonly egress: DirectionReport;
}

export interface RulesReport {
  readonly node: string;
  readonly table: string;
  readonly sync: SyncStatus;
  readonly pods: readonly PodReport[];
  readonly notEnforceable: readonly {
    readonly policy: string;
    readonly reason: string;
    readonly enforcedAs: { readonly podSelector: string; readonly isolates: readonly Direction[]; readonly allows: 'nothing' };
  }[];
  readonly rejected: readonly RejectedObject[];
  /** Policies in audit: evaluated and their would-be drops logged, not enforced (added by the agent). */
  readonly audit?: readonly string[];
}

export function selectorText(s: Selector): string {
  if (s.requirements.length === 0) return '{} (all)';
  const req = (r: LabelRequirement): string => {
    switch (r.operator) {
      case 'In':
        return r.values.length === 1 ? `${r.key}=${r.values[0] ?? ''}` : `${r.key} in (${r.values.join(',')})`;
      case 'NotIn':
        return `${r.key} notin (${r.values.join(',')})`;
      case 'Exists':
        return r.key;
      case 'DoesNotExist':
        return `!${r.key}`;
    }
  };
  return s.requirements.map(req).join(',');
}

function peerText(p: PolicyPeer): string {
  if (p.kind === 'ipBlock') return p.except.length === 0 ? `ipBlock ${p.cidr}` : `ipBlock ${p.cidr} except ${p.except.join(',')}`;
  const pods = `podSelector ${selectorText(p.podSelector)}`;
  return p.namespaceSelector === null ? pods : `namespaceSelector ${selectorText(p.namespaceSelector)} ${pods}`;
}

function portSpecText(p: PortSpec): string {
  switch (p.kind) {
    case 'number':
      return p.endPort === p.port ? `${p.protocol}/${p.port}` : `${p.protocol}/${p.port}-${p.endPort}`;
    case 'named':
      return `${p.protocol}/${p.name}`;
    case 'allPorts':
      return `${p.protocol}/all`;
  }
}

/** "namespace/policy/direction/index" -> its policy key and index. */
function parseRuleId(rule: string): { policy: string; direction: Direction; index: number } {
  const parts = rule.split('/');
  return { policy: `${parts[0] ?? ''}/${parts[1] ?? ''}`, direction: parts[2] === 'egress' ? 'egress' : 'ingress', index: Number(parts[3]) };
}

export function buildRulesReport(src: RulesSource, query: RulesQuery): RulesReport {
  // A query for one pod reads that pod's elements only, whatever the size of the table.
  const table = buildRuleTable(src.node, query.pod === undefined ? src.elements() : src.podElements(query.pod));
  const peersOf = new Map(table.rules.map((r) => [r.rule, r]));
  const wantPolicy = query.policy;
  const ruleReport = (rule: string, ports: readonly PortMatch[]): RuleReport => {
    const id = parseRuleId(rule);
    const written = src.policy(id.policy)?.[id.direction][id.index];
    const peers = peersOf.get(rule);
    const group = (port: string | null, list: readonly PeerMatch[]): PeerGroupReport => ({
      port,
      resolvedAddresses: list.length,
      ...(query.verbose === true ? { addresses: list } : {}),
    });
    return {
      rule,
      policy: id.policy,
      peers: written === undefined ? [] : written.peers === null ? ['all peers'] : written.peers.map(peerText),
      ports: written === undefined ? [] : written.ports === null ? ['all ports'] : written.ports.map(portSpecText),
      resolvedPorts: ports.length === 0 ? ['all ports'] : ports.map(portMatchText),
      resolved: [group(null, peers?.peers ?? []), ...(peers?.peersByPort ?? []).map((g) => group(portMatchText(g.port), g.peers))],
    };
  };
  const pods: PodReport[] = [];
  for (const p of table.pods) {
    if (query.pod !== undefined && p.pod !== query.pod) continue;
    const direction = (d: Direction): DirectionReport => {
      const rules = p[d].rules.filter((r) => wantPolicy === undefined || parseRuleId(r.rule).policy === wantPolicy);
      return {
        isolated: p[d].isolatedBy.length > 0,
        isolatedBy: p[d].isolatedBy,
        nftables: src.implementationOf(p.pod, d),
        rules: rules.map((r) => ruleReport(r.rule, r.ports)),
      };
    };
    const report: PodReport = { pod: p.pod, ips: p.ips, ingress: direction('ingress'), egress: direction('egress') };
    if (wantPolicy !== undefined && !DIRECTIONS.some((d) => report[d].isolatedBy.includes(wantPolicy))) continue;
    pods.push(report);
  }
  return {
    node: src.node,
    table: src.table,
    sync: src.status(),
    pods,
    notEnforceable: src.notEnforceableList()
      .filter((n) => wantPolicy === undefined || n.policy === wantPolicy)
      .map((n) => ({
        policy: n.policy,
        reason: n.reason,
        enforcedAs: {
          podSelector: n.selectorUsable ? selectorText(n.enforcedAs.podSelector) : '{} (every pod of the namespace: the podSelector is unusable)',
          isolates: DIRECTIONS.filter((d) => (d === 'ingress' ? n.enforcedAs.ingressIsolation : n.enforcedAs.egressIsolation)),
          allows: 'nothing' as const,
        },
      })),
    rejected: src.rejectedList(),
  };
}

/** The report as /rules sends it: the readable text, or JSON. */
export function renderRulesReport(report: RulesReport, asText: boolean): { readonly type: string; readonly body: string } {
  if (asText) return { type: 'text/plain; charset=utf-8', body: formatRulesText(report) };
  return { type: 'application/json', body: `${JSON.stringify(report, null, 2)}\n` };
}

/** The readable view: what `netpol-agent rules` prints. */
export function formatRulesText(r: RulesReport): string {
  const out: string[] = [];
  const s = r.sync;
  out.push(`node ${r.node}  table inet ${r.table}`);
  out.push(`sync: ${s.ready ? 'ready' : s.synced ? 'synced, not ready' : 'waiting for the source'}  generation ${s.generation}  pending events ${s.pendingEvents}`);
  out.push(`      last full sync ${s.lastFullSync ?? 'never'}  last change ${s.lastChange ?? 'never'}`);
  if (s.sourceProblem !== null) out.push(`      source failing since ${s.sourceProblem.since}: ${s.sourceProblem.message}`);
  if (s.lastError !== null) out.push(`      last error at ${s.lastError.at}: ${s.lastError.message}`);
  if (r.notEnforceable.length > 0) {
    out.push('', 'NOT ENFORCEABLE AS WRITTEN (enforced fail-closed):');
    for (const n of r.notEnforceable) {
      out.push(`  ${n.policy}: ${n.reason}`);
      out.push(`    isolates ${n.enforcedAs.isolates.join(' and ') || 'nothing'} of pods ${n.enforcedAs.podSelector}; allows ${n.enforcedAs.allows}`);
    }
  }
  if (r.rejected.length > 0) {
    out.push('', 'INVALID UPDATES (last good version kept):');
    for (const o of r.rejected) out.push(`  ${o.kind} ${o.object}: ${o.reason}`);
  }
  if (r.audit !== undefined && r.audit.length > 0) out.push('', `IN AUDIT (evaluated and logged as "would drop", not enforced): ${r.audit.join(', ')}`);
  out.push('', `LOCAL PODS (${r.pods.length})`);
  if (r.pods.some((p) => DIRECTIONS.some((d) => p[d].counters !== undefined))) out.push(`  counters: ${COUNTER_GRANULARITY}`);
  for (const p of r.pods) {
    out.push(`  ${p.pod}  ${p.ips.join(' ') || '(no address)'}`);
    for (const d of DIRECTIONS) {
      const dr = p[d];
      if (!dr.isolated) {
        out.push(`    ${d}: not isolated (all allowed)`);
        continue;
      }
      const nft = dr.nftables === null ? 'not programmed (no address)' : `chain ${dr.nftables.chain}, sets ${dr.nftables.sets.join(' ')}`;
      out.push(`    ${d}: isolated by ${dr.isolatedBy.join(', ')}; ${nft}`);
      if (dr.counters !== undefined) out.push(...formatDirectionCounters(dr.counters));
      if (dr.rules.length === 0) out.push('      no rule allows anything');
      for (const rule of dr.rules) {
        out.push(`      rule ${rule.rule}`);
        out.push(`        peers: ${rule.peers.join(' | ') || '?'}`);
        out.push(`        ports: ${rule.ports.join(' ') || '?'}  (resolved: ${rule.resolvedPorts.join(' ')})`);
        for (const g of rule.resolved) {
          const where = g.port === null ? 'on those ports' : `on their port ${g.port}`;
          out.push(`        ${g.resolvedAddresses} resolved address(es) ${where}${g.addresses === undefined ? '' : `: ${g.addresses.join(' ')}`}`);
        }
      }
    }
  }
  return `${out.join('\n')}\n`;
}
