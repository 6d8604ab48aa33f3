// Debug reads served from memory: one counters listing at a time, shared by every request that arrives
// meanwhile and kept for a bounded age; a whole-table /rules report rendered at most once per max age and
// shared; /rules?pod= reading only that pod's elements. A fake dataplane counts listings and a fake
// clock ages them: nothing here depends on time passing.
import type { ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Direction, RuleTableElement } from '../../src/api';
import { AgentMetrics } from '../../src/agent/metrics';
import { Observability } from '../../src/agent/observability';
import type { SyncStatus } from '../../src/agent/agent-loop';
import { buildRulesReport } from '../../src/agent/rules-report';
import type { RulesReport, RulesSource } from '../../src/agent/rules-report';
import { NodeCompiler } from '../../src/compiler';
import { clusterView } from '../../src/observe/explain';
import type { GroupCounterReport } from '../../src/dataplane';
import { RuleState } from '../../src/ruletable';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const NODE = 'node-1';

/** Counter listings that end when the test says so, counted. */
class ListingDataplane {
  listings = 0;
  readonly #pending: { resolve: (g: GroupCounterReport[]) => void; reject: (e: Error) => void }[] = [];
  groups: GroupCounterReport[] = [];
  counters(): Promise<GroupCounterReport[]> {
    this.listings++;
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }
  finish(): void {
    this.#pending.shift()?.resolve(this.groups);
  }
  fail(): void {
    this.#pending.shift()?.reject(new Error('listing failed'));
  }
}

class Clock {
  ms = 0;
  readonly now = (): number => this.ms;
}

function observability(dataplane: ListingDataplane, clock: Clock): Observability {
  return new Observability({ dataplane, metrics: new AgentMetrics(), countersMaxAgeMs: 1_000, now: clock.now });
}

describe('counters: at most one listing, shared, with a bounded age', () => {
  it('50 concurrent reads share one listing, and the listing serves for the max age after it ended', async () => {
    const dataplane = new ListingDataplane();
    const clock = new Clock();
    const o = observability(dataplane, clock);
    const reads = Array.from({ length: 50 }, () => o.counters());
    assert.equal(dataplane.listings, 1, 'one listing for 50 readers');
    clock.ms = 5_000; // however long it runs, readers join it
    reads.push(o.counters());
    assert.equal(dataplane.listings, 1);
    dataplane.finish();
    const listings = await Promise.all(reads);
    assert.ok(listings.every((l) => l === listings[0]), 'every reader gets the same listing');
    clock.ms = 6_000;
    assert.equal(await o.counters(), listings[0], 'still fresh at the max age after it ended');
    assert.equal(dataplane.listings, 1);
    clock.ms = 6_001;
    const next = o.counters();
    assert.equal(dataplane.listings, 2, 'older than the max age: listed again');
    dataplane.finish();
    assert.notEqual(await next, listings[0]);
  });

  it('a failed listing is not kept: its readers get the error, the next read lists again', async () => {
    const dataplane = new ListingDataplane();
    const o = observability(dataplane, new Clock());
    const a = o.counters();
    const b = o.counters();
    dataplane.fail();
    await assert.rejects(a, /listing failed/);
    await assert.rejects(b, /listing failed/);
    const c = o.counters();
    assert.equal(dataplane.listings, 2);
    dataplane.finish();
    assert.equal((await c).groups.size, 0);
  });
});

/** A node's rule table from objects, as a RulesSource; `wholeTableReads` counts reads of every element. */
function rulesSource(objects: readonly object[]): RulesSource & { generation: number; wholeTableReads: number; forbidWholeTable: boolean } {
  const compiler = new NodeCompiler(NODE);
  for (const e of eventsBetween(null, decodeObjects(objects, 'test'))) compiler.apply(e);
  const state = RuleState.of(compiler.elements());
  const status = (generation: number): SyncStatus => ({ synced: true, ready: true, lastFullSync: null, lastChange: null, generation, pendingEvents: 0, lastError: null, sourceProblem: null });
  const source = {
    node: NODE,
    table: 'np',
    generation: 1,
    wholeTableReads: 0,
    forbidWholeTable: false,
    status: () => status(source.generation),
    elements: (): Iterable<RuleTableElement> => {
      if (source.forbidWholeTable) throw new Error('the whole table was read');
      source.wholeTableReads++;
      return compiler.elements();
    },
    podElements: (pod: string) => state.podElements(pod),
    policy: () => undefined,
    notEnforceableList: () => [],
    rejectedList: () => [],
    implementationOf: (pod: string, direction: Direction) => (state.isIsolated(pod, direction) ? { chain: `${direction}-${pod}`, sets: [] } : null),
  };
  return source;
}

const OBJECTS = [
  makeNamespace('shop'),
  makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.1.10'] }),
  makePod('shop', 'db', { labels: { app: 'db' }, ips: ['10.0.1.11'] }),
  makePod('shop', 'client', { labels: { access: 'true' }, node: 'node-2', ips: ['10.0.2.10'] }),
  makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 80 }] }] }),
  makePolicy('shop', 'db-in', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] }),
];

describe('/rules from memory', () => {
  it('?pod= reads that pod only, never the whole table, and says what the whole report says of it', () => {
    const source = rulesSource(OBJECTS);
    const whole = buildRulesReport(source, {});
    source.forbidWholeTable = true;
    const one = buildRulesReport(source, { pod: 'shop/web' });
    assert.deepEqual(one.pods, whole.pods.filter((p) => p.pod === 'shop/web'));
    assert.equal(one.pods[0]?.ingress.rules[0]?.resolved[0]?.resolvedAddresses, 1, "the rule's peer is there");
    assert.deepEqual(buildRulesReport(source, { pod: 'shop/none' }).pods, []);
  });

  it('a whole-table report is rendered once per max age, commits or not, and every client gets the same body', async () => {
    const dataplane = new ListingDataplane();
    dataplane.groups = [{ chain: 'ingress-shop/web', direction: 'ingress', pods: ['shop/web'], counters: { drop: { packets: 3, bytes: 180 } } }];
    const clock = new Clock();
    const o = observability(dataplane, clock);
    const source = rulesSource(OBJECTS);
    const replies = Array.from({ length: 50 }, () => o.rules(source, {}, false));
    dataplane.finish();
    const bodies = (await Promise.all(replies)).map((r) => r.body);
    assert.equal(source.wholeTableReads, 1, 'one rendering for 50 clients');
    assert.equal(dataplane.listings, 1);
    assert.ok(bodies.every((b) => b === bodies[0]), 'one body, shared');
    const report = JSON.parse(String(bodies[0])) as RulesReport;
    assert.deepEqual(report.pods.find((p) => p.pod === 'shop/web')?.ingress.counters?.dropped, { packets: 3, bytes: 180 });

    assert.equal((await o.rules(source, {}, true)).type, 'text/plain; charset=utf-8', 'another format is another rendering');
    assert.equal(source.wholeTableReads, 2);
    source.generation = 2;
    assert.equal((await o.rules(source, {}, false)).body, bodies[0], 'a commit within the max age: the kept report, which names its generation');
    assert.equal(source.wholeTableReads, 2);
    clock.ms = 1_001;
    const aged = o.rules(source, {}, false);
    dataplane.finish();
    const renderedAgain = JSON.parse(String((await aged).body)) as RulesReport;
    assert.equal(source.wholeTableReads, 3, 'past the max age it renders again');
    assert.equal(renderedAgain.sync.generation, 2);
  });

  it('?pod= gets the counters of its own chains and is not kept', async () => {
    const dataplane = new ListingDataplane();
    dataplane.groups = [{ chain: 'ingress-shop/db', direction: 'ingress', pods: ['shop/db'], counters: { drop: { packets: 1, bytes: 60 } } }];
    const o = observability(dataplane, new Clock());
    const source = rulesSource(OBJECTS);
    source.forbidWholeTable = true;
    const reply = o.rules(source, { pod: 'shop/db' }, false);
    dataplane.finish();
    const report = JSON.parse(String((await reply).body)) as RulesReport;
    assert.deepEqual(report.pods.map((p) => [p.pod, p.ingress.counters?.dropped]), [['shop/db', { packets: 1, bytes: 60 }]]);
  });
});

describe('/explain: bounded in cost', () => {
  it('reads at most the configured number of policies of a namespace, and says what to do instead', async () => {
    const objects = decodeObjects([
      makeNamespace('shop'),
      makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.1.10'] }),
      makePod('shop', 'client', { node: 'node-2', ips: ['10.0.2.10'] }),
      ...['a', 'b', 'c'].map((n) => makePolicy('shop', n, { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }] }] })),
    ], 'test');
    const ask = async (max: number): Promise<{ status: number; body: string }> => {
      const o = new Observability({ dataplane: new ListingDataplane(), metrics: new AgentMetrics(), cluster: clusterView(objects), explainMaxPolicies: max });
      let reply = { status: 0, body: '' };
      await o.handle(new URL('http://agent/explain?from=shop/client&to=shop/web&port=80&format=text'), {} as ServerResponse, (_res, status, _type, body) => {
        reply = { status, body: String(body) };
      });
      return reply;
    };
    assert.deepEqual(await ask(3), { status: 200, body: 'TCP/80 from shop/client to shop/web: ALLOWED\n  egress of shop/client: not isolated (no policy selects it for egress)\n  ingress of shop/web: isolated by shop/a, shop/b, shop/c; allowed by rule shop/a/ingress/0\n' });
    assert.deepEqual(await ask(2), { status: 400, body: 'namespace shop has more than 2 NetworkPolicies, more than /explain reads for one answer: run `netpol-agent probe --explain` on its manifests instead\n' });
  });
});
