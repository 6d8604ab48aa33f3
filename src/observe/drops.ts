// Denied connections, from the kernel's log records to what an operator reads: who (pods or addresses),
// what (protocol, port), where (ingress on the destination's node, egress on the source's) and why
// (the policies that isolate the pod, and that none of their rules allows this peer on this port).
// Identical drops within a window become one log line with a count, first and last seen; the entries
// waiting for their window and the recent ones /drops serves are bounded.
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { LRUCache } from 'lru-cache';
import type { Direction, Protocol } from '../api';
import { parseIp } from '../net/ip';

/** A drop record from the kernel (nftables-napi's NflogRecord, the fields used here). */
export interface DropRecord {
  readonly prefix: string;
  readonly family: number;
  readonly protocol: number;
  readonly saddr?: string;
  readonly daddr?: string;
  readonly dport: number;
}

/** What explaining a record needs of the dataplane and of the cluster. */
export interface DropContext {
  /** A group chain's direction, or null when no local pod uses it any more. */
  group(chain: string): { readonly direction: Direction } | null;
  localPodOf(ip: string): string | null;
  /** Any pod of the cluster holding the address. */
  podOf(ip: string): string | null;
  decide(pod: string, direction: Direction, remote: NonNullable<ReturnType<typeof parseIp>>, protocol: Protocol, port: number): { readonly allowed: boolean; readonly rule?: string; readonly isolatedBy: readonly string[] };
  boundRules(pod: string, direction: Direction): string[];
}

/** The DropContext of a dataplane's rules, with pod names from the cluster index. */
export function dropContext(
  dataplane: Pick<DropContext, 'group' | 'localPodOf' | 'decide' | 'boundRules'>,
  index: { podOf(ip: string): string | null },
): DropContext {
  return {
    group: (chain) => dataplane.group(chain),
    localPodOf: (ip) => dataplane.localPodOf(ip),
    podOf: (ip) => index.podOf(ip),
    decide: (pod, direction, remote, protocol, port) => dataplane.decide(pod, direction, remote, protocol, port),
    boundRules: (pod, direction) => dataplane.boundRules(pod, direction),
  };
}

export interface Endpoint {
  readonly ip: string;
  /** "namespace/name" when the address is a pod's. */
  readonly pod?: string;
}

export interface DropEvent {
  readonly verdict: 'drop' | 'would drop';
  readonly direction: Direction;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  /** TCP, UDP, SCTP, or "proto N". */
  readonly protocol: string;
  /** null for a protocol without ports. */
  readonly port: number | null;
  /** The isolated local pod whose rules decided ("namespace/name"), or null when the chain is gone. */
  readonly pod: string | null;
  readonly isolatedBy: readonly string[];
  /** The rules bound to the pod in that direction, none of which allows this connection (the first MAX_RULES_SHOWN). */
  readonly rules: readonly string[];
  /** How many rules are bound (rules lists at most MAX_RULES_SHOWN of them, to bound each line). */
  readonly rulesBound: number;
  readonly reason: string;
  /** The group chain that dropped it. */
  readonly chain: string;
}

export interface AggregatedDrop extends DropEvent {
  count: number;
  readonly firstSeen: string;
  lastSeen: string;
}

/** Rules named in one drop line; a pod bound to many rules is said so with their number. */
export const MAX_RULES_SHOWN = 5;

/** At most MAX_RULES_SHOWN names, then how many more. */
function rulesText(rules: readonly string[]): string {
  const shown = rules.slice(0, MAX_RULES_SHOWN).join(', ');
  return rules.length > MAX_RULES_SHOWN ? `${shown} and ${rules.length - MAX_RULES_SHOWN} more` : shown;
}

const PROTOCOL_NUMBERS: Readonly<Record<number, Protocol>> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

function endpointText(e: Endpoint): string {
  return e.pod === undefined ? e.ip : `${e.pod} (${e.ip})`;
}

/** The drop event for one record, or null when the record is not one of ours (no address). */
export function explainDrop(rec: DropRecord, ctx: DropContext, verdict: DropEvent['verdict'] = 'drop'): DropEvent | null {
  if (rec.saddr === undefined || rec.daddr === undefined) return null;
  const direction: Direction = ctx.group(rec.prefix)?.direction ?? (rec.prefix.startsWith('eg_') ? 'egress' : 'ingress');
  const [localIp, remoteIp] = direction === 'ingress' ? [rec.daddr, rec.saddr] : [rec.saddr, rec.daddr];
  const endpoint = (ip: string): Endpoint => {
    const pod = ctx.podOf(ip) ?? ctx.localPodOf(ip);
    return pod === null ? { ip } : { ip, pod };
  };
  const src = endpoint(rec.saddr);
  const dst = endpoint(rec.daddr);
  const known = PROTOCOL_NUMBERS[rec.protocol];
  const protocol = known ?? `proto ${rec.protocol}`;
  const port = rec.dport >= 0 ? rec.dport : null;
  const pod = ctx.localPodOf(localIp);
  const remote = parseIp(remoteIp);
  const base = { verdict, direction, src, dst, protocol, port, chain: rec.prefix };
  const target = port === null ? protocol : `${protocol}/${port}`;
  const peer = endpointText(direction === 'ingress' ? src : dst);
  if (pod === null || remote === null) {
    return { ...base, pod: null, isolatedBy: [], rules: [], rulesBound: 0, reason: `dropped by chain ${rec.prefix}, which no local pod with address ${localIp} uses any more (the rules changed since)` };
  }
  const bound = ctx.boundRules(pod, direction);
  const rules = bound.slice(0, MAX_RULES_SHOWN);
  const rulesBound = bound.length;
  if (known === undefined || port === null) {
    const v = ctx.decide(pod, direction, remote, 'TCP', 0);
    return { ...base, pod, isolatedBy: v.isolatedBy, rules, rulesBound, reason: `${direction} of ${pod} is isolated by ${rulesText(v.isolatedBy)}; NetworkPolicy allows only TCP, UDP and SCTP, and ${protocol} from isolated pods is dropped` };
  }
  const v = ctx.decide(pod, direction, remote, known, port);
  if (v.allowed) {
    return { ...base, pod, isolatedBy: v.isolatedBy, rules, rulesBound, reason: `${v.rule === undefined ? 'not isolated' : `allowed by ${v.rule}`} now: the rules changed after the packet was dropped` };
  }
  const audit = verdict === 'would drop' ? ' (in audit: not enforced, the connection went through)' : '';
  const none = bound.length === 0 ? 'they have no rule for this direction' : `none of their rules (${rulesText(bound)}) allows ${peer} on ${target}`;
  return { ...base, pod, isolatedBy: v.isolatedBy, rules, rulesBound, reason: `${direction} of ${pod} is isolated by ${rulesText(v.isolatedBy)}${audit} and ${none}` };
}

/** Whether the enforced rules let the connection of an audit event through (then it is a "would drop"). */
export function enforcedAllows(event: DropEvent, enforced: DropContext): boolean {
  const localIp = event.direction === 'ingress' ? event.dst.ip : event.src.ip;
  const remote = parseIp(event.direction === 'ingress' ? event.src.ip : event.dst.ip);
  const pod = enforced.localPodOf(localIp);
  const protocol = (['TCP', 'UDP', 'SCTP'] as const).find((p) => p === event.protocol);
  if (pod === null || remote === null) return true;
  if (protocol === undefined || event.port === null) return enforced.decide(pod, event.direction, remote, 'TCP', 0).isolatedBy.length === 0;
  return enforced.decide(pod, event.direction, remote, protocol, event.port).allowed;
}

export interface DropLogOptions {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Identical drops within this window are one line (default 5 s). */
  readonly windowMs?: number;
  /** Distinct drops waiting for their window; beyond that the oldest is logged early (default 10,000). */
  readonly maxPending?: number;
  /** Drops /drops can show (default 1,000). */
  readonly maxRecent?: number;
  /** The clock (tests). */
  readonly now?: () => number;
}

export class DropLog {
  private readonly windowMs: number;
  private readonly maxRecent: number;
  private readonly now: () => number;
  private readonly pending: LRUCache<string, { entry: AggregatedDrop; started: number }>;
  private readonly recentList: AggregatedDrop[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly dropped: Counter<'namespace' | 'direction' | 'verdict'>;
  private readonly lost: Counter;

  constructor(private readonly options: DropLogOptions) {
    this.windowMs = options.windowMs ?? 5_000;
    this.maxRecent = options.maxRecent ?? 1_000;
    this.now = options.now ?? Date.now;
    this.pending = new LRUCache({
      max: options.maxPending ?? 10_000,
      dispose: (value, _key, reason) => {
        if (reason === 'evict') this.emit(value.entry);
      },
    });
    this.dropped = new Counter({
      name: 'netpol_agent_denied_connections_total',
      help: 'Denied new connections read from the kernel log (rate-limited per group chain in the kernel: a sample under floods), by namespace of the isolated pod, direction and verdict (drop, would drop)',
      labelNames: ['namespace', 'direction', 'verdict'],
      registers: [options.registry],
    });
    this.lost = new Counter({
      name: 'netpol_agent_drop_log_lost_total',
      help: 'Drop records the agent could not read (socket overrun, reader behind)',
      registers: [options.registry],
    });
    this.timer = setInterval(() => this.flush(false), Math.max(50, Math.floor(this.windowMs / 2)));
    this.timer.unref();
  }

  /** Counts one drop; a new one starts a window, an identical one within it adds to its count. */
  record(event: DropEvent): void {
    const at = this.now();
    const isolated = event.pod ?? (event.direction === 'ingress' ? event.dst.pod : event.src.pod) ?? '';
    const namespace = isolated.includes('/') ? isolated.slice(0, isolated.indexOf('/')) : '';
    this.dropped.inc({ namespace, direction: event.direction, verdict: event.verdict });
    const key = [event.verdict, event.direction, event.src.ip, event.dst.ip, event.protocol, event.port ?? '', event.chain].join('|');
    const open = this.pending.get(key);
    if (open !== undefined) {
      open.entry.count++;
      open.entry.lastSeen = new Date(at).toISOString();
      return;
    }
    const entry: AggregatedDrop = { ...event, count: 1, firstSeen: new Date(at).toISOString(), lastSeen: new Date(at).toISOString() };
    this.pending.set(key, { entry, started: at });
    this.recentList.push(entry);
    if (this.recentList.length > this.maxRecent) this.recentList.splice(0, this.recentList.length - this.maxRecent);
  }

  /** Records the reader could not deliver. */
  recordLost(n: number): void {
    if (n > 0) this.lost.inc(n);
  }

  /** Logs the drops whose window has passed (all of them with `all`). */
  flush(all: boolean): void {
    const now = this.now();
    for (const [key, { entry, started }] of [...this.pending.entries()]) {
      if (!all && now - started < this.windowMs) continue;
      this.pending.delete(key);
      this.emit(entry);
    }
  }

  /** Recent drops, newest first (by last seen); with `pod`, those from or to it. */
  recent(filter: { readonly pod?: string; readonly limit?: number } = {}): AggregatedDrop[] {
    const out = this.recentList.filter((d) => filter.pod === undefined || d.src.pod === filter.pod || d.dst.pod === filter.pod);
    out.sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0));
    return out.slice(0, filter.limit ?? out.length);
  }

  /** Logs what is pending and stops the window timer. */
  close(): void {
    clearInterval(this.timer);
    this.flush(true);
  }

  private emit(entry: AggregatedDrop): void {
    const { reason, ...fields } = entry;
    const what = `${endpointText(entry.src)} -> ${endpointText(entry.dst)} ${entry.port === null ? entry.protocol : `${entry.protocol}/${entry.port}`}`;
    this.options.logger.info({ drop: { ...fields, reason } }, `${entry.verdict === 'drop' ? 'dropped' : 'would drop (audit)'} ${entry.direction} ${what} x${entry.count}: ${reason}`);
  }
}
