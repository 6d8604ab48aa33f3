// Identity of rule-table elements: a stable text key per element, so that tables and deltas are
// plain sets that can be compared, diffed and streamed.
import type { PortMatch, RuleTableElement } from '../api';

export function portMatchText(port: PortMatch): string {
  if (port === 'any') return 'any';
  return port.from === port.to ? `${port.protocol}/${port.from}` : `${port.protocol}/${port.from}-${port.to}`;
}

export function elementKey(e: RuleTableElement): string {
  switch (e.kind) {
    case 'address':
      return `address|${e.pod}|${e.ip}`;
    case 'isolation':
      return `isolation|${e.pod}|${e.direction}|${e.policy}`;
    case 'bind':
      return `bind|${e.pod}|${e.rule}|${e.port === null ? '' : portMatchText(e.port)}`;
    case 'peer':
      return `peer|${e.rule}|${e.peer}|${e.port === null ? '' : portMatchText(e.port)}`;
  }
}

/**
 * Reference-counted set of elements that records, between two takeDelta() calls, which keys changed
 * presence. Several producers may hold the same element; it leaves the table only when the last one
 * lets go, and an element removed then re-added within one event does not appear in the delta.
 */
export class ElementStore {
  private readonly entries = new Map<string, { count: number; element: RuleTableElement }>();
  /** key -> the element as it was present before the pending changes, or null if it was absent. */
  private readonly touched = new Map<string, RuleTableElement | null>();

  acquire(key: string, element: RuleTableElement): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      entry.count++;
      return;
    }
    if (!this.touched.has(key)) this.touched.set(key, null);
    this.entries.set(key, { count: 1, element });
  }

  release(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) throw new Error(`rule table: release of an element that is not held: ${key}`);
    if (--entry.count > 0) return;
    this.entries.delete(key);
    if (!this.touched.has(key)) this.touched.set(key, entry.element);
  }

  takeDelta(): { added: RuleTableElement[]; removed: RuleTableElement[] } {
    const added: RuleTableElement[] = [];
    const removed: RuleTableElement[] = [];
    for (const [key, before] of this.touched) {
      const now = this.entries.get(key);
      if (before === null && now !== undefined) added.push(now.element);
      else if (before !== null && now === undefined) removed.push(before);
    }
    this.touched.clear();
    return { added, removed };
  }

  get size(): number {
    return this.entries.size;
  }

  *elements(): IterableIterator<RuleTableElement> {
    for (const entry of this.entries.values()) yield entry.element;
  }
}
