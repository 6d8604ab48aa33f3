// A probe loop that runs for the whole of a fault: real TCP connections between pod namespaces, judged
// against the verdicts the test declares as it writes to the API server. A verdict is wrong when it is
// neither the one in force now nor one that was in force within the pair's convergence bound: a denied
// pair that gets through, or an allowed pair dropped, for longer than the bound after the change.
import type { Sandbox } from '../../../src/sandbox';

export interface Pair {
  from: string;
  toIp: string;
  port: number;
  label: string;
}

interface Expectation {
  since: number;
  allowed: boolean;
  /** How long after `since` the previous verdict is still acceptable. */
  boundMs: number;
}

export class ProbeLoop {
  private readonly history = new Map<string, Expectation[]>();
  private readonly pairs = new Map<string, Pair>();
  private running = false;
  private loop: Promise<void> | null = null;
  readonly wrong: string[] = [];
  probes = 0;
  rounds = 0;
  /** Verdicts that differed from the one in force but were still within its bound (convergence). */
  converging = 0;

  constructor(private readonly sandbox: Sandbox, private readonly timeoutMs: number) {}

  /** Declares a pair's verdict from now on; the previous one stays acceptable for boundMs. */
  expect(pair: Pair, allowed: boolean, boundMs: number): void {
    this.pairs.set(pair.label, pair);
    const h = this.history.get(pair.label) ?? [];
    h.push({ since: Date.now(), allowed, boundMs });
    this.history.set(pair.label, h);
  }

  /** Stops probing a pair (its pod is about to go). */
  forget(label: string): void {
    this.pairs.delete(label);
  }

  /** Any verdict is acceptable for this pair until boundMs from now, then `allowed` again (an external edit of the kernel). */
  tolerate(label: string, boundMs: number): void {
    const h = this.history.get(label);
    const last = h?.[h.length - 1];
    if (h === undefined || last === undefined) return;
    h.push({ since: Date.now(), allowed: !last.allowed, boundMs: 0 });
    h.push({ since: Date.now(), allowed: last.allowed, boundMs });
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const pairs = [...this.pairs.values()];
        const started = Date.now();
        const results = await this.sandbox.probe(pairs.map((p) => ({ from: p.from, toIp: p.toIp, port: p.port, protocol: 'TCP', timeoutMs: this.timeoutMs })));
        const ended = Date.now();
        this.rounds++;
        for (const [i, r] of results.entries()) {
          const pair = pairs[i] as Pair;
          if (!this.pairs.has(pair.label)) continue; // forgotten while probing
          this.probes++;
          if (r.outcome === 'error' || r.outcome === 'skipped') {
            this.wrong.push(`${new Date(ended).toISOString()} ${pair.label}: probe error ${r.detail}`);
            continue;
          }
          const allowed = r.outcome === 'connected' || r.outcome === 'refused';
          const verdict = this.judge(pair.label, allowed, started, ended);
          if (verdict === 'wrong') this.wrong.push(`${new Date(ended).toISOString()} ${pair.label}: ${allowed ? 'got through' : 'dropped'} (${r.outcome})`);
          else if (verdict === 'converging') this.converging++;
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Waits until a pair is seen with the verdict in force now (for timing a convergence). */
  async waitSeen(label: string, allowed: boolean, timeoutMs: number): Promise<number> {
    const start = Date.now();
    const pair = this.pairs.get(label);
    if (pair === undefined) throw new Error(`no pair ${label}`);
    for (;;) {
      const [r] = await this.sandbox.probe([{ from: pair.from, toIp: pair.toIp, port: pair.port, protocol: 'TCP', timeoutMs: this.timeoutMs }]);
      const got = r !== undefined && (r.outcome === 'connected' || r.outcome === 'refused');
      if (got === allowed) return Date.now() - start;
      if (Date.now() - start > timeoutMs) throw new Error(`${label}: not ${allowed ? 'allowed' : 'denied'} within ${timeoutMs} ms (last ${r?.outcome ?? 'none'})`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  private judge(label: string, allowed: boolean, started: number, ended: number): 'ok' | 'converging' | 'wrong' {
    const h = this.history.get(label) ?? [];
    // The verdict in force at the end of the probe, and every verdict whose grace covers the probe.
    let current: Expectation | undefined;
    for (const e of h) if (e.since <= ended) current = e;
    if (current === undefined) return 'ok';
    if (current.allowed === allowed) return 'ok';
    for (let i = h.length - 1; i > 0; i--) {
      const e = h[i] as Expectation;
      const prev = h[i - 1] as Expectation;
      if (e.since > ended) continue;
      // prev's verdict is acceptable until e.since + e.boundMs
      if (prev.allowed === allowed && started <= e.since + e.boundMs) return 'converging';
    }
    return 'wrong';
  }
}
