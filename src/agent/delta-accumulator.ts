// Folds successive rule-table deltas into one: what a transaction carries when several events were
// compiled while the previous one was in flight. An element's presence alternates (the compiler's store
// is refcounted), so only its first and last change matter: added then removed cancels out.
import type { RuleTableDelta, RuleTableElement } from '../api';
import { elementKey } from '../ruletable';

interface Change {
  readonly element: RuleTableElement;
  readonly firstAdded: boolean;
  lastAdded: boolean;
}

export class DeltaAccumulator {
  private changes = new Map<string, Change>();

  add(delta: RuleTableDelta): void {
    for (const e of delta.removed) this.record(e, false);
    for (const e of delta.added) this.record(e, true);
  }

  get size(): number {
    return this.changes.size;
  }

  /** The net delta since the last take(), and a fresh start. */
  take(): RuleTableDelta {
    const added: RuleTableElement[] = [];
    const removed: RuleTableElement[] = [];
    for (const c of this.changes.values()) {
      if (c.firstAdded !== c.lastAdded) continue;
      (c.lastAdded ? added : removed).push(c.element);
    }
    this.changes = new Map();
    return { added, removed };
  }

  clear(): void {
    this.changes = new Map();
  }

  private record(element: RuleTableElement, added: boolean): void {
    const key = elementKey(element);
    const c = this.changes.get(key);
    if (c === undefined) this.changes.set(key, { element, firstAdded: added, lastAdded: added });
    else c.lastAdded = added;
  }
}
