// What one group of local pods allows, kept up to date one span at a time, so that an update costs
// what it changes rather than what the group holds. Exact keys (one address with one port or every
// port) are counted elements of hash sets: a span in or out changes at most one element. The rest
// (CIDRs, ranges, any peer) is flattened into disjoint interval elements, again only when it changed.
import type { AllowSpan } from '../ruletable';
import { portMatchText } from '../ruletable';
import type { KeyParts } from './flatten';
import { exactElement, flattenAllowSpans } from './flatten';
import type { ExactSetSuffix, GroupContent, GroupSetSuffix, IntervalSetSuffix } from './layout';
import { elementId } from './layout';

type Elements = Map<string, { readonly key: KeyParts }>;

/** A visible change of one span: an exact element that appeared or went, or the interval part. */
export type GroupChange = { readonly set: ExactSetSuffix; readonly id: string } | { readonly set: 'interval' };

function spanId(span: AllowSpan): string {
  return `${span.peer}|${portMatchText(span.port)}`;
}

export class GroupAllow {
  /** Exact elements with the number of spans that give each (two rules may allow the same key). */
  private readonly exact: Record<ExactSetSuffix, Map<string, { readonly key: KeyParts; n: number }>> = {
    px4: new Map(),
    px6: new Map(),
    ax4: new Map(),
    ax6: new Map(),
  };
  private readonly intervalSpans = new Map<string, { readonly span: AllowSpan; n: number }>();
  /** The flattened interval part; null once a span of it changed. */
  private flat: { allowAll: boolean; sets: Record<IntervalSetSuffix, Elements> } | null = null;

  static of(spans: Iterable<AllowSpan>): GroupAllow {
    const group = new GroupAllow();
    for (const span of spans) group.change(span, 1);
    return group;
  }

  /** Counts a span in (+1) or out (-1); returns what became visibly different, if anything. */
  change(span: AllowSpan, by: 1 | -1): GroupChange | null {
    const exact = exactElement(span);
    if (exact !== null) {
      const set: ExactSetSuffix = span.port === 'any' ? (exact.family === 4 ? 'ax4' : 'ax6') : exact.family === 4 ? 'px4' : 'px6';
      const id = elementId(exact.key);
      return counted(this.exact[set], id, by, () => ({ key: exact.key, n: 0 })) ? { set, id } : null;
    }
    if (!counted(this.intervalSpans, spanId(span), by, () => ({ span, n: 0 }))) return null;
    this.flat = null;
    return { set: 'interval' };
  }

  content(): GroupContent {
    const flat = this.intervalPart();
    return { allowAll: flat.allowAll, sets: { ...this.exact, ...flat.sets } satisfies Record<GroupSetSuffix, Elements> };
  }

  private intervalPart(): { allowAll: boolean; sets: Record<IntervalSetSuffix, Elements> } {
    if (this.flat !== null) return this.flat;
    const f = flattenAllowSpans([...this.intervalSpans.values()].map((s) => s.span));
    const byId = (keys: readonly KeyParts[]): Elements => new Map(keys.map((key) => [elementId(key), { key }]));
    this.flat = {
      allowAll: f.allowAll,
      sets: {
        pp4: byId(f.peerPorts[4]),
        pp6: byId(f.peerPorts[6]),
        pa4: byId(f.peersAllPorts[4]),
        pa6: byId(f.peersAllPorts[6]),
        ap: byId(f.anyPeerPorts),
        pr4: byId(f.podPortRanges[4]),
        pr6: byId(f.podPortRanges[6]),
      },
    };
    return this.flat;
  }
}

/** Moves a count by one; true when the entry appeared or went. */
function counted<T extends { n: number }>(map: Map<string, T>, id: string, by: 1 | -1, create: () => T): boolean {
  let entry = map.get(id);
  if (entry === undefined) {
    if (by < 0) return false;
    map.set(id, (entry = create()));
  }
  entry.n += by;
  if (entry.n > 0) return by > 0 && entry.n === 1;
  map.delete(id);
  return true;
}
