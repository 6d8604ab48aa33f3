// Truth tables of expected pod-to-pod connectivity, mirroring upstream
// test/e2e/network/netpol/reachability.go and truthtable.go:
//
// - a table starts with one default expectation for every ordered pair
//   (upstream always uses `true`);
// - Expect sets one pair, ExpectAllIngress sets every pair *to* a pod,
//   ExpectAllEgress every pair *from* a pod, ExpectPeer every pair whose ends
//   match two Peer patterns (an empty namespace or pod matches anything);
// - later calls overwrite earlier ones, so call order matters.
//
// Loopback (a pod probing itself): upstream keeps whatever the Expect* calls
// set for x/a->x/a (ExpectPeer and ExpectAllIngress do reach the diagonal), but
// its comparison runs with `ignoreLoopback = true` (network_policy.go, see
// kubernetes#95879): a loopback result never fails a test, whatever it is.
// `AllowLoopback()` exists upstream but no test calls it. We reproduce both:
// the table keeps upstream's diagonal values, and `loopbackPairs()` names the
// pairs a runner must not fail on (ProbeSpec.ignored in upstream-cases.ts).

export type PairKey = string; // "x/a->y/b"

export function pairKey(from: string, to: string): PairKey {
  return `${from}->${to}`;
}

export function parsePairKey(key: PairKey): { from: string; to: string } {
  const i = key.indexOf('->');
  if (i <= 0 || i + 2 >= key.length) throw new Error(`expected "from->to", got "${key}"`);
  return { from: key.slice(0, i), to: key.slice(i + 2) };
}

export function isLoopback(key: PairKey): boolean {
  const { from, to } = parsePairKey(key);
  return from === to;
}

/** Upstream compares with ignoreLoopback = true. */
export const UPSTREAM_IGNORE_LOOPBACK = true;

/** The "x/a->x/a" pairs for the given pods. */
export function loopbackPairs(podKeys: readonly string[]): Set<PairKey> {
  return new Set(podKeys.map((p) => pairKey(p, p)));
}

/** Matches pods by namespace and/or name; an omitted or empty field matches everything. */
export interface Peer {
  namespace?: string;
  pod?: string;
}

export function peerMatches(peer: Peer, podKey: string): boolean {
  const slash = podKey.indexOf('/');
  const ns = podKey.slice(0, slash);
  const name = podKey.slice(slash + 1);
  return (peer.namespace === undefined || peer.namespace === '' || peer.namespace === ns) &&
    (peer.pod === undefined || peer.pod === '' || peer.pod === name);
}

export class Reachability {
  private readonly pods: readonly string[];
  private readonly podSet: ReadonlySet<string>;
  private readonly values = new Map<PairKey, boolean>();

  constructor(podKeys: readonly string[], defaultExpectation: boolean) {
    this.pods = [...podKeys];
    this.podSet = new Set(podKeys);
    for (const from of this.pods) {
      for (const to of this.pods) this.values.set(pairKey(from, to), defaultExpectation);
    }
  }

  private check(pod: string, role: string): void {
    if (!this.podSet.has(pod)) throw new Error(`${role} pod "${pod}" is not in the truth table`);
  }

  /** Upstream Reachability.Expect: one ordered pair. */
  expect(from: string, to: string, connected: boolean): this {
    this.check(from, 'from');
    this.check(to, 'to');
    this.values.set(pairKey(from, to), connected);
    return this;
  }

  /** Upstream ExpectAllIngress: every pair whose destination is `pod` (including pod->pod). */
  expectAllIngress(pod: string, connected: boolean): this {
    this.check(pod, 'to');
    for (const from of this.pods) this.values.set(pairKey(from, pod), connected);
    return this;
  }

  /** Upstream ExpectAllEgress: every pair whose source is `pod` (including pod->pod). */
  expectAllEgress(pod: string, connected: boolean): this {
    this.check(pod, 'from');
    for (const to of this.pods) this.values.set(pairKey(pod, to), connected);
    return this;
  }

  /** Upstream ExpectPeer: every pair with from matching `from` and to matching `to`. */
  expectPeer(from: Peer, to: Peer, connected: boolean): this {
    for (const f of this.pods) {
      if (!peerMatches(from, f)) continue;
      for (const t of this.pods) {
        if (peerMatches(to, t)) this.values.set(pairKey(f, t), connected);
      }
    }
    return this;
  }

  /** Upstream AllowLoopback (unused by the upstream tests; kept for parity). */
  allowLoopback(): this {
    for (const p of this.pods) this.values.set(pairKey(p, p), true);
    return this;
  }

  get(from: string, to: string): boolean {
    const v = this.values.get(pairKey(from, to));
    if (v === undefined) throw new Error(`pair ${pairKey(from, to)} is not in the truth table`);
    return v;
  }

  podKeys(): string[] {
    return [...this.pods];
  }

  /** A copy of the table, from-major in pod order: "from->to" -> allowed. */
  table(): Map<PairKey, boolean> {
    return new Map(this.values);
  }
}

// ---------------------------------------------------------------------------
// Comparison and printing (upstream TruthTable.Compare / PrettyPrint / Summary).
// ---------------------------------------------------------------------------

export interface Comparison {
  /** Pairs where observed == expected (ignored pairs excluded). */
  correct: number;
  /** Pairs where observed != expected and the pair is not ignored, in table order. */
  wrong: PairKey[];
  /** Pairs not judged (upstream: loopback). */
  ignored: PairKey[];
  /** Pairs present in `expected` but absent from `observed`. */
  missing: PairKey[];
  /** "from->to" -> observed matches expected. */
  matches: Map<PairKey, boolean>;
}

export function compareTruthTables(
  expected: ReadonlyMap<PairKey, boolean>,
  observed: ReadonlyMap<PairKey, boolean>,
  ignored: ReadonlySet<PairKey> = new Set(),
): Comparison {
  const result: Comparison = { correct: 0, wrong: [], ignored: [], missing: [], matches: new Map() };
  for (const [key, want] of expected) {
    const got = observed.get(key);
    if (got === undefined) {
      result.missing.push(key);
      continue;
    }
    result.matches.set(key, got === want);
    if (ignored.has(key)) result.ignored.push(key);
    else if (got === want) result.correct++;
    else result.wrong.push(key);
  }
  return result;
}

function podsOf(table: ReadonlyMap<PairKey, boolean>): string[] {
  const seen = new Set<string>();
  for (const key of table.keys()) {
    const { from, to } = parsePairKey(key);
    seen.add(from);
    seen.add(to);
  }
  return [...seen];
}

export interface PrettyPrintOptions {
  /** Row/column order; defaults to the order pods first appear in the table. */
  podKeys?: readonly string[];
  /** Pairs drawn with `ignoredMark` when their cell would otherwise be `falseMark`. */
  ignored?: ReadonlySet<PairKey>;
  trueMark?: string;
  falseMark?: string;
  ignoredMark?: string;
  indent?: string;
}

/**
 * Upstream's truth-table picture: rows are sources, columns destinations,
 * '.' = true (allowed / matches), 'X' = false (blocked / differs), '?' = no value.
 */
export function prettyPrintTruthTable(table: ReadonlyMap<PairKey, boolean>, options: PrettyPrintOptions = {}): string {
  const pods = options.podKeys ? [...options.podKeys] : podsOf(table);
  const t = options.trueMark ?? '.';
  const f = options.falseMark ?? 'X';
  const indent = options.indent ?? '';
  const width = Math.max(3, ...pods.map((p) => p.length)) + 1;
  const cell = (s: string): string => s.padEnd(width);
  const lines = [indent + (cell('-') + pods.map(cell).join('')).trimEnd()];
  for (const from of pods) {
    const row = [cell(from)];
    for (const to of pods) {
      const key = pairKey(from, to);
      const v = table.get(key);
      let mark = v === undefined ? '?' : v ? t : f;
      if (v === false && options.ignored?.has(key) && options.ignoredMark !== undefined) mark = options.ignoredMark;
      row.push(cell(mark));
    }
    lines.push(indent + row.join('').trimEnd());
  }
  return lines.join('\n');
}

/**
 * The failure message upstream prints (expected, observed, comparison); in the
 * comparison '.' = as expected, 'X' = wrong, '~' = differs but ignored (loopback).
 */
export function formatReachabilityReport(
  expected: ReadonlyMap<PairKey, boolean>,
  observed: ReadonlyMap<PairKey, boolean>,
  ignored: ReadonlySet<PairKey> = new Set(),
  podKeys?: readonly string[],
): string {
  const cmp = compareTruthTables(expected, observed, ignored);
  const pods = podKeys ?? podsOf(expected);
  const opts = { podKeys: pods, indent: '  ' };
  const parts = [
    `reachability: correct:${cmp.correct}, incorrect:${cmp.wrong.length}, ignored:${cmp.ignored.length}` +
      (cmp.missing.length > 0 ? `, missing:${cmp.missing.length}` : ''),
    'expected:',
    prettyPrintTruthTable(expected, opts),
    'observed:',
    prettyPrintTruthTable(observed, opts),
    'comparison:',
    prettyPrintTruthTable(cmp.matches, { ...opts, ignored, ignoredMark: '~' }),
  ];
  if (cmp.wrong.length > 0) {
    parts.push('wrong: ' + cmp.wrong.map((k) => `${k} (expected ${expected.get(k) ? 'allowed' : 'blocked'})`).join(', '));
  }
  return parts.join('\n');
}
