// The judge of the API tier's fault probe loop (test/support/api-tier/probe-loop.ts), against a scripted sandbox:
// the faults pass only if it reports nothing wrong, so it must report what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProbeRequest, ProbeResult, Sandbox } from '../../src/sandbox';
import { ProbeLoop, type Pair } from '../support/api-tier/probe-loop';

const pair: Pair = { from: 'ns/client', toIp: '10.0.0.1', port: 80, label: 'client->server' };

/** A sandbox whose probes answer what `connected()` says at the time they are sent. */
function scripted(connected: () => boolean): Sandbox {
  const fake = {
    probe: async (reqs: ProbeRequest[]): Promise<ProbeResult[]> => {
      await new Promise((r) => setTimeout(r, 5));
      return reqs.map((req) => ({ req, outcome: connected() ? 'connected' : 'timeout', detail: '' }));
    },
  };
  return fake as unknown as Sandbox;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a denied pair that gets through is wrong', async () => {
  const loop = new ProbeLoop(scripted(() => true), 50);
  loop.expect(pair, false, 100);
  loop.start();
  await sleep(100);
  await loop.stop();
  assert.ok(loop.wrong.length > 0 && loop.wrong.every((w) => w.includes('got through')));
});

test('after a change the old verdict is accepted within its bound, then wrong', async () => {
  const loop = new ProbeLoop(scripted(() => false), 50);
  loop.expect(pair, false, 100);
  loop.start();
  await sleep(50);
  loop.expect(pair, true, 600); // the "enforcement" lags: still dropped
  await sleep(100);
  assert.equal(loop.wrong.length, 0, `within the bound: converging, yet ${loop.wrong.join('; ')}`);
  assert.ok(loop.converging > 0);
  await sleep(800);
  await loop.stop();
  assert.ok(loop.wrong.some((w) => w.includes('dropped')), 'past the bound: an allowed pair dropped is wrong');
});

test('verdicts that follow the declared ones are never wrong; tolerate() covers an external edit for its bound', async () => {
  let allowedNow = true;
  const loop = new ProbeLoop(scripted(() => allowedNow), 50);
  loop.expect(pair, false, 100);
  allowedNow = false;
  loop.start();
  await sleep(60);
  loop.tolerate(pair.label, 1000);
  allowedNow = true; // the hole an edit of the table opens
  await sleep(60);
  allowedNow = false; // repaired
  await sleep(60);
  await loop.stop();
  assert.deepEqual(loop.wrong, []);
  assert.ok(loop.probes > 5);
});
