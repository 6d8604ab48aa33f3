// Folds successive rule-table deltas into one: what a transaction carries when several events were
// compiled while the previous one was in flight. An element's presence alternates (the compiler's store
// is refcounted), so only its first and last change matter: added then removed cancels out.
// A single delta is already net and passes through untouched: keying 110,000 peer elements costs
// about a second (bench/agent-latency.ts, a local pod selected by a rule whose peers are every pod).
import type { RuleTableDelta, RuleTableElement } from '../api';
import { elementKey } from '../ruletable';

interface Change {
  readonly element: RuleTableElement;
  readonly firstAdded: boolean;
  lastAdded: boolean;
}

export class DeltaAccumulator {
  private pending: RuleTableDelta[] = [];

  add(delta: RuleTableDelta): void {
    if (delta.added.length > 0 || delta.removed.length > 0) this.pending.push(delta);
  }

  /** True when nothing changed since the last take(). */
  get empty(): boolean {
    return this.pending.length === 0;
  }

  /** The net delta since the last take(), and a fresh start. */
  take(): RuleTableDelta {
    const pending = this.pending;
    this.pending = [];
    if (pending.length === 0) return { added: [], removed: [] };
    if (pending.length === 1) return pending[0] as RuleTableDelta;
    const changes = new Map<string, Change>();
    const record = (element: RuleTableElement, added: boolean): void => {
      const key = elementKey(element);
      const c = changes.get(key);
      if (c === undefined) changes.set(key, { element, firstAdded: added, lastAdded: added });
      else c.lastAdded = added;
    };
    for (const delta of pending) {
      for (const e of delta.removed) record(e, false);
      for (const e of delta.added) record(e, true);
    }
    const added: RuleTableElement[] = [];
    const removed: RuleTableElement[] = [];
    for (const c of changes.values()) {
      if (c.firstAdded !== c.lastAdded) continue;
      (c.lastAdded ? added : removed).push(c.element);
    }
    return { added, removed };
  }

  clear(): void {
    this.pending = [];
  }
}
