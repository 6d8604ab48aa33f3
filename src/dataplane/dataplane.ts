// Programs one node's rule table into its nftables table: a full sync at start-up (and on demand),
// then one transaction per rule-table delta touching only the groups and sets it changed. Every
// change is a single atomic transaction, and the table is never flushed as a whole, so no packet
// ever sees a half-programmed state.
import type { Direction, RuleTableDelta, RuleTableElement } from '../api';
import { DIRECTIONS } from '../api';
import { AgentError, errorMessage } from '../errors';
import { flattenAllowSpans } from './flatten';
import type { DesiredView, DropLogging, GroupCounters } from './layout';
import { POD_MAPS, addGroupView, groupCounters, groupName, groupSetNames, podMapView, staticChains } from './layout';
import type { NftBackend } from './nft';
import { NftApplyError } from './nft';
import type { Transaction } from './nft';
import { diffViews, viewFromSnapshot } from './diff';
import type { Scope } from './diff';
import { RuleState, podDirectionKey } from '../ruletable';
import type { Verdict } from '../ruletable';
import type { Protocol } from '../api';
import type { IpAddress } from '../net/ip';

export interface DataplaneOptions {
  /** Dropped new connections to nfnetlink_log (see DropLogging); default: not logged. */
  readonly logging?: DropLogging;
  /** An audit table: group chains log and count what they would drop, and drop nothing. */
  readonly audit?: boolean;
}

/** One group chain as the kernel counts it: its direction, its member pods, its rules' counters. */
export interface GroupCounterReport {
  readonly chain: string;
  readonly direction: Direction;
  /** Local pods ("namespace/name") whose packets this chain decides: they share its counters. */
  readonly pods: readonly string[];
  readonly counters: GroupCounters;
}

export interface SyncReport {
  readonly kind: 'full' | 'incremental';
  /** nft operations sent in the transaction (0: the kernel already matched). */
  readonly operations: number;
  readonly groups: number;
  readonly durationMs: number;
}

export class DataplaneError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATAPLANE', message, options);
  }
}

function emptyView(): DesiredView {
  return { chains: new Map(), sets: new Map() };
}

export class Dataplane {
  private state = new RuleState();
  /** What this process last wrote (or found) in the kernel; null until the first full sync. */
  private programmed: DesiredView | null = null;
  /** pod|direction -> group chain, for isolated local pods with addresses. */
  private readonly groupOf = new Map<string, string>();
  private readonly members = new Map<string, Set<string>>();
  private readonly groupRules = new Map<string, string[]>();
  private readonly ruleGroups = new Map<string, Set<string>>();

  constructor(
    private readonly backend: NftBackend,
    private readonly options: DataplaneOptions = {},
  ) {}

  /** Where dropped new connections are logged, or null. */
  get logging(): DropLogging | null {
    return this.options.logging ?? null;
  }

  get table(): string {
    return this.backend.table;
  }

  /** Start-up, or on demand: the whole rule table, repairing whatever the kernel holds. */
  async sync(elements: Iterable<RuleTableElement>): Promise<SyncReport> {
    this.state = RuleState.of(elements);
    return this.reconcile();
  }

  /** Compares the kernel with the desired state and repairs the difference in one transaction. */
  async reconcile(): Promise<SyncReport> {
    const started = performance.now();
    // Until this transaction succeeds, what the kernel holds is unknown: the next call starts over.
    this.programmed = null;
    for (const pd of [...this.groupOf.keys()]) this.setGroup(pd, null);
    for (const pod of this.state.pods()) for (const d of DIRECTIONS) this.setGroup(podDirectionKey(pod, d), this.wantedGroup(pod, d));
    const desired = this.buildView(new Set(this.members.keys()));
    const snapshot = await this.backend.list().catch((err: unknown) => {
      throw new DataplaneError(`table inet ${this.backend.table}: listing it for a full reconcile failed: ${errorMessage(err)}`, { cause: err });
    });
    const current = snapshot === null ? null : viewFromSnapshot(snapshot);
    const tx = diffViews(this.backend.table, current, desired, null);
    await this.run(tx, 'full reconcile');
    this.programmed = desired;
    return { kind: 'full', operations: tx.size, groups: this.members.size, durationMs: performance.now() - started };
  }

  /**
   * One rule-table delta as one transaction. After any failure the kernel's content is unknown (and
   * groupOf/members already describe the delta), so `programmed` is forgotten and the next call is
   * a full reconcile; a transaction the kernel refused is repaired at once by that reconcile.
   */
  async apply(delta: RuleTableDelta): Promise<SyncReport> {
    const started = performance.now();
    const touched = this.state.apply(delta);
    const programmed = this.programmed;
    if (programmed === null) return this.reconcile();
    this.programmed = null;
    try {
      const affected = new Set<string>();
      for (const pd of touched.podDirections) {
        const [pod, direction] = splitPodDirection(pd);
        const before = this.groupOf.get(pd) ?? null;
        const after = this.wantedGroup(pod, direction);
        if (before === after) continue;
        this.setGroup(pd, after);
        if (before !== null) affected.add(before);
        if (after !== null) affected.add(after);
      }
      for (const rule of touched.rules) for (const g of this.ruleGroups.get(rule) ?? []) affected.add(g);
      const live = new Set([...affected].filter((g) => this.members.has(g)));
      const desired = this.buildView(live);
      const scope: Scope = {
        chains: affected,
        sets: new Set([...POD_MAPS.map((m) => m.name), ...[...affected].flatMap(groupSetNames)]),
      };
      const tx = diffViews(this.backend.table, programmed, desired, scope);
      await this.run(tx, 'incremental update');
      applyScope(programmed, desired, scope);
      this.programmed = programmed;
      return { kind: 'incremental', operations: tx.size, groups: this.members.size, durationMs: performance.now() - started };
    } catch (err) {
      // Someone changed our table behind our back: what we believe is no longer true. Repair it all.
      if (err instanceof DataplaneError && err.cause instanceof NftApplyError) return this.reconcile();
      throw err;
    }
  }

  /** The group chain and sets that implement a local pod's rules in one direction; null when it is not isolated. */
  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null {
    const chain = this.groupOf.get(podDirectionKey(pod, direction));
    return chain === undefined ? null : { chain, sets: groupSetNames(chain) };
  }

  /**
   * The counters of every group chain, read from the kernel's listing of the table (one listing,
   * whatever the number of groups). A listed chain the dataplane does not know is left out.
   */
  async counters(): Promise<GroupCounterReport[]> {
    const snapshot = await this.backend.list();
    const out: GroupCounterReport[] = [];
    for (const chain of snapshot?.chains ?? []) {
      const info = this.group(chain.name);
      if (info !== null) out.push({ chain: chain.name, ...info, counters: groupCounters(chain) });
    }
    return out;
  }

  /** A group chain's direction and member pods, or null when no local pod uses a chain of that name. */
  group(chain: string): { readonly direction: Direction; readonly pods: string[] } | null {
    const members = this.members.get(chain);
    if (members === undefined || members.size === 0) return null;
    const pods = [...members].map((pd) => splitPodDirection(pd)[0]).sort();
    return { direction: splitPodDirection(members.values().next().value as string)[1], pods };
  }

  /** The local pod that holds `ip`, if any (a linear scan over local pods: they are few). */
  localPodOf(ip: string): string | null {
    for (const pod of this.state.pods()) if (this.state.ipsOf(pod).includes(ip)) return pod;
    return null;
  }

  /** The verdict the programmed rules give a new connection of a local pod (see RuleState.decide). */
  decide(pod: string, direction: Direction, remote: IpAddress, protocol: Protocol, port: number): Verdict {
    return this.state.decide(pod, direction, remote, protocol, port);
  }

  /** The rules bound to a local pod in one direction. */
  boundRules(pod: string, direction: Direction): string[] {
    return this.state.signature(pod, direction).rules;
  }

  private async run(tx: Transaction, what: string): Promise<void> {
    if (tx.size === 0) return;
    try {
      await this.backend.run(tx);
    } catch (err) {
      throw new DataplaneError(`table inet ${this.backend.table}: ${what} failed (${tx.size} operations): ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The group a local pod belongs to in one direction: null when it is not isolated or has no address. */
  private wantedGroup(pod: string, direction: Direction): string | null {
    if (!this.state.isIsolated(pod, direction) || this.state.ipsOf(pod).length === 0) return null;
    const sig = this.state.signature(pod, direction);
    const name = groupName(direction, sig.text);
    if (!this.groupRules.has(name)) {
      this.groupRules.set(name, sig.rules);
      for (const r of sig.rules) addTo(this.ruleGroups, r, name);
    }
    return name;
  }

  private setGroup(pd: string, group: string | null): void {
    const before = this.groupOf.get(pd);
    if (before !== undefined) {
      const m = this.members.get(before);
      m?.delete(pd);
      if (m !== undefined && m.size === 0) {
        this.members.delete(before);
        for (const r of this.groupRules.get(before) ?? []) removeFrom(this.ruleGroups, r, before);
        this.groupRules.delete(before);
      }
      this.groupOf.delete(pd);
    }
    if (group !== null) {
      this.groupOf.set(pd, group);
      addTo(this.members, group, pd);
    }
  }

  /** Desired objects: the static chains, the pod maps, and the given groups. */
  private buildView(groups: ReadonlySet<string>): DesiredView {
    const view = emptyView();
    for (const [name, chain] of staticChains()) view.chains.set(name, chain);
    for (const m of POD_MAPS) {
      const entries = new Map<string, string>();
      for (const [pd, group] of this.groupOf) {
        const [pod, direction] = splitPodDirection(pd);
        if (direction !== m.direction) continue;
        for (const ip of this.state.ipsOf(pod)) if (ip.includes(':') === (m.family === 6)) entries.set(ip, group);
      }
      view.sets.set(m.name, podMapView(m.family, entries));
    }
    for (const group of groups) {
      const representative = this.members.get(group)?.values().next().value;
      if (representative === undefined) continue;
      const [pod, direction] = splitPodDirection(representative);
      addGroupView(view, group, direction, flattenAllowSpans(this.state.spans(pod, direction)), this.options.logging ?? null, this.options.audit === true);
    }
    return view;
  }
}

function splitPodDirection(pd: string): [string, Direction] {
  const bar = pd.lastIndexOf('|');
  return [pd.slice(0, bar), pd.slice(bar + 1) as Direction];
}

function addTo(index: Map<string, Set<string>>, key: string, value: string): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom(index: Map<string, Set<string>>, key: string, value: string): void {
  const set = index.get(key);
  set?.delete(value);
  if (set !== undefined && set.size === 0) index.delete(key);
}

/** After a successful incremental transaction, the kernel holds `desired` for everything in scope. */
function applyScope(programmed: DesiredView, desired: DesiredView, scope: Scope): void {
  for (const name of scope.chains) {
    const c = desired.chains.get(name);
    if (c === undefined) programmed.chains.delete(name);
    else programmed.chains.set(name, c);
  }
  for (const name of scope.sets) {
    const s = desired.sets.get(name);
    if (s === undefined) programmed.sets.delete(name);
    else programmed.sets.set(name, s);
  }
}
