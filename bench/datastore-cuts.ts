// How often a datastore file cut while written (a reader between the truncate and the end of an
// in-place write) leaves nginx open: the demo's datastore (examples/access-nginx, the policy last) is
// cut at the end and in the middle of every line, each cut written over the good file, and the state
// the file source then delivers is asked whether nginx is still isolated for ingress (by the policy,
// or fail-closed by a rejected one). Prints the counts; asserts nothing.
//
//   node build/bench/datastore-cuts.js [build/src of another tree, to compare with its file source]
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ClusterEvent, ClusterSource, ObjectKind, ObjectRef, PolicyState, SourceSink } from '../src/api';
import { failClosedPolicy } from '../src/agent/fail-closed';
import { selectorMatches } from '../src/compiler';
import { ClusterIndex } from '../src/observe/cluster-index';

const EXAMPLE = join(__dirname, '..', '..', 'examples', 'access-nginx');
/** Long enough for a debounced read and a poll of the file source; a measurement, not a test. */
const SETTLE_MS = 150;

type FileSourceClass = new (options: { path: string; debounceMs?: number; pollMs?: number }) => ClusterSource;

class StateSink implements SourceSink {
  readonly index = new ClusterIndex();
  readonly failClosed = new Map<string, PolicyState>();
  isSynced = false;
  events(batch: readonly ClusterEvent[]): void {
    for (const e of batch) {
      this.index.apply(e);
      if (e.kind === 'NetworkPolicy') this.failClosed.delete(e.type === 'upsert' ? `${e.object.namespace}/${e.object.name}` : `${e.ref.namespace}/${e.ref.name}`);
    }
  }
  rejected(kind: ObjectKind, ref: ObjectRef, _reason: string, raw: unknown): void {
    if (kind === 'NetworkPolicy') this.failClosed.set(`${ref.namespace}/${ref.name}`, failClosedPolicy(ref, raw).policy);
  }
  synced(): void {
    this.isSynced = true;
  }
  problem(): void {}
  health(): void {}

  nginxIsolated(): boolean {
    const nginx = this.index.pod('default/nginx');
    if (nginx === undefined) return false; // no pod, no address in the table: whatever it is, it is not isolated
    const policies = [...this.index.policiesIn('default'), ...this.failClosed.values()];
    return policies.some((p) => p.ingressIsolation && selectorMatches(p.podSelector, nginx.labels));
  }
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function outcome(FileSource: FileSourceClass, good: string, cut: string): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'datastore-cuts-'));
  const file = join(dir, 'datastore.yaml');
  writeFileSync(file, good);
  const source = new FileSource({ path: file, debounceMs: 5, pollMs: 20 });
  const sink = new StateSink();
  try {
    source.start(sink);
    while (!sink.isSynced) await pause(5);
    writeFileSync(`${file}.tmp`, cut);
    renameSync(`${file}.tmp`, file);
    await pause(SETTLE_MS);
    return sink.nginxIsolated();
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const other = process.argv[2];
  const modulePath = other === undefined ? '../src/source' : join(resolve(other), 'source');
  const { FileSource } = require(modulePath) as { FileSource: FileSourceClass };
  const good = ['cluster.yaml', 'nginx-policy.yaml'].map((f) => readFileSync(join(EXAMPLE, f), 'utf8')).join('---\n');
  const cuts: number[] = [];
  let at = 0;
  for (const line of good.split('\n').slice(0, -1)) {
    cuts.push(at + Math.floor(line.length / 2), at + line.length + 1);
    at += line.length + 1;
  }
  let open = 0;
  for (const length of cuts) if (!(await outcome(FileSource, good, good.slice(0, length)))) open++;
  console.log(`file source of ${other ?? 'this tree'}: ${cuts.length} cuts of the demo's datastore (${good.length} bytes, the middle and the end of each line), nginx left open by ${open}, isolated after ${cuts.length - open}`);
}

void main();
