// Per-packet cost of every path a real cluster's packets take through the node's table, each against
// the (b) around it, in one run. Prints figures and ratios; asserts nothing about time. Needs root.
//
//   npm run bench:paths              (BENCH_CONN_ROUNDS, BENCH_CONN_SECONDS, BENCH_PATHS=name,name...)
//
// The reference cluster (bench/synthetic-cluster.ts) plus a server on its busiest node selected by
// 50 policies (a long chain of rules: pod selectors, namespace selectors, ipBlocks with excepts, named
// ports, port ranges), and one client per path: each admitted by exactly one rule of one kind, at
// the first or the last of the 50 policies, over IPv4 and IPv6. The product programs the table
// (NodeCompiler -> Dataplane -> KernelNftBackend); (b) and (c) differ by one incremental
// Dataplane.apply (the server's isolation out or in: one transaction), so switching costs one commit.
//
//   (b)  our table, the server not isolated (no policy selects it): conntrack and the dispatch maps
//   (c)  the same table with the 50 policies selecting the server: the packet walks its group chain
//   (a)  no table at all (the table's fixed cost: (a)/(b))
//   (a') no table of ours, conntrack on as on any node running kube-proxy: one chain with one
//        `ct state established,related accept` (what of (a)/(b) is conntrack's own cost)
//
// Allowed paths: new TCP connections per second (bench/tools/connrate.c client: connect, RST).
// Denials: SYNs per second the client gets through the node (connrate syn: non-blocking connect,
// close at once; every SYN is a new connection), dropped by the server's group chain in (c) and
// forwarded to the server in (b), with drop logging on (the agent's default) and off. They go to a
// port nothing listens on, so in (b) the server answers RST: towards a listener, the SYN-ACKs would
// leave the client's ports in TIME-WAIT and the client would slow down for want of ports.
// Each round measures every path as (b) (c) (b) with the same client, and its ratio is (c) over the
// mean of the two (b)s; (b) over the (b) before it is the noise floor, measured the same way.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { NamespaceState, PodState, PolicyRule, PolicyState, RuleTableDelta, Selector } from '../src/api';
import { DEFAULT_DROP_LOGGING } from '../src/agent/agent';
import { Dataplane, DEFAULT_TABLE } from '../src/dataplane';
import { KernelNftBackend } from '../src/dataplane/nft';
import { Sandbox } from '../src/sandbox';
import { NftContext } from 'nftables-napi';
import { BENCH_PORT, SERVER, buildConnrate, compile, isRoot, packetCluster, parseClient, startServer } from './dataplane';
import { median, printTable } from './report';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const SERVER_V6 = 'fd00:250::10';
/** Where the denied client's SYNs go: no listener, so (b) answers RST (see the top of this file). */
const CLOSED_PORT = BENCH_PORT + 1;
const sel = (labels: Record<string, string>): Selector => ({ requirements: Object.entries(labels).map(([key, v]) => ({ key, operator: 'In' as const, values: [v] })) });
const EVERYTHING: Selector = { requirements: [] };
const tcp = (port: number, endPort = port): PolicyRule['ports'] => [{ kind: 'number', protocol: 'TCP', port, endPort }];

/** One client of the benchmark: a sandbox pod on the bench node, and the one rule that admits it. */
interface Client {
  readonly key: string;
  readonly v4: string;
  readonly v6: string;
  /** Where its admitting rule sits: policy index (0..49), and the rule that admits it (null: none). */
  readonly policy: number;
  readonly rule: PolicyRule | null;
  /** A pod the compiler knows (labels), or an address outside the cluster (ipBlock peers). */
  readonly labels: Record<string, string> | null;
  readonly what: string;
}

const CLIENT_NS = 'bench-clients';
const pod = (name: string, n: number, policy: number, what: string, rule: (labels: Record<string, string>) => PolicyRule | null): Client => {
  const labels = { role: name };
  return { key: `${SERVER.namespace}/${name}`, v4: `10.250.0.${n}`, v6: `fd00:250::${n}`, policy, rule: rule(labels), labels, what };
};

const CLIENTS: readonly Client[] = [
  pod('first', 21, 0, 'pod selector, first rule of the first policy', (l) => ({ peers: [{ kind: 'pods', podSelector: sel(l), namespaceSelector: null }], ports: tcp(BENCH_PORT) })),
  { key: `${CLIENT_NS}/client`, v4: '10.250.0.22', v6: 'fd00:250::22', policy: 10, labels: { app: 'client' }, what: 'namespace selector (every pod of a namespace)',
    rule: { peers: [{ kind: 'pods', podSelector: EVERYTHING, namespaceSelector: sel({ purpose: 'bench-clients' }) }], ports: tcp(BENCH_PORT) } },
  { key: 'external/ipblock', v4: '198.51.100.20', v6: '2001:db8:51::20', policy: 20, labels: null, what: 'ipBlock, no except',
    rule: { peers: [{ kind: 'ipBlock', cidr: '198.51.100.0/24', except: [] }, { kind: 'ipBlock', cidr: '2001:db8:51::/64', except: [] }], ports: tcp(BENCH_PORT) } },
  { key: 'external/except', v4: '203.0.113.20', v6: '2001:db8:113::20', policy: 30, labels: null, what: 'ipBlock with except',
    rule: { peers: [{ kind: 'ipBlock', cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] }, { kind: 'ipBlock', cidr: '2001:db8:113::/48', except: ['2001:db8:113:1::/64'] }], ports: tcp(BENCH_PORT) } },
  pod('named', 23, 40, 'pod selector, named port', (l) => ({ peers: [{ kind: 'pods', podSelector: sel(l), namespaceSelector: null }], ports: [{ kind: 'named', protocol: 'TCP', name: 'bench' }] })),
  pod('range', 24, 45, 'pod selector, port range', (l) => ({ peers: [{ kind: 'pods', podSelector: sel(l), namespaceSelector: null }], ports: tcp(BENCH_PORT - 50, BENCH_PORT + 49) })),
  pod('last', 25, 49, 'pod selector, last rule of the last policy', (l) => ({ peers: [{ kind: 'pods', podSelector: sel(l), namespaceSelector: null }], ports: tcp(BENCH_PORT) })),
  pod('denied', 26, 0, 'no rule admits it', () => null),
];

/** The 50 policies of the packet cluster, each path's admitting rule put at its place in the chain. */
function pathPolicies(base: readonly PolicyState[]): PolicyState[] {
  return base.map((p, i) => {
    // The base's only client rule (policy 25) is replaced by an ordinary one of its neighbour.
    const own = i === 25 ? (base[24]?.ingress ?? []) : p.ingress;
    const admitting = CLIENTS.filter((c) => c.policy === i && c.rule !== null).map((c) => c.rule as PolicyRule);
    return { ...p, ingress: i === 0 ? [...admitting, ...own] : [...own, ...admitting] };
  });
}

type Family = 4 | 6;
type Mode = 'connect' | 'syn';
interface Path {
  readonly name: string;
  readonly client: Client;
  readonly family: Family;
  readonly mode: Mode;
  /** Drop logging on (the agent's default) or off in the table of this path. */
  readonly logging: boolean;
}

function allPaths(): Path[] {
  const out: Path[] = [];
  for (const family of [4, 6] as const) {
    for (const client of CLIENTS) {
      if (client.rule !== null) out.push({ name: `${client.what}, IPv${family}`, client, family, mode: 'connect', logging: true });
    }
  }
  const denied = CLIENTS.find((c) => c.rule === null) as Client;
  for (const family of [4, 6] as const) {
    for (const logging of [true, false]) out.push({ name: `denied, drop log ${logging ? 'on' : 'off'}, IPv${family} (SYN/s)`, client: denied, family, mode: 'syn', logging });
  }
  return out;
}

const range = (xs: readonly number[]): string => (xs.length === 0 ? '-' : `${Math.min(...xs).toFixed(3)}..${Math.max(...xs).toFixed(3)}`);

export async function runPathBenchmark(): Promise<void> {
  const SECONDS = env('BENCH_CONN_SECONDS', 3);
  const ROUNDS = env('BENCH_CONN_ROUNDS', 7);
  if (!isRoot()) {
    console.log('dataplane per-packet paths: skipped, needs root (network namespaces, nftables)\n');
    return;
  }
  const bin = buildConnrate();
  if (bin === null) {
    console.log('dataplane per-packet paths: no C compiler for connrate: skipped\n');
    return;
  }
  const only = (process.env['BENCH_PATHS'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const paths = allPaths().filter((p) => only.length === 0 || only.some((o) => p.name.includes(o)));
  const loadStart = loadAverage();
  const cluster = packetCluster();
  const node = cluster.node;
  const ns = (name: string, labels: Record<string, string>): NamespaceState => ({ name, labels: { 'kubernetes.io/metadata.name': name, ...labels } });
  const clientPods: PodState[] = CLIENTS.filter((c) => c.labels !== null).map((c) => {
    const [namespace, name] = c.key.split('/') as [string, string];
    return { namespace, name, uid: `uid-${c.key}`, labels: c.labels as Record<string, string>, nodeName: node, hostNetwork: false, phase: 'Running', ips: [c.v4, c.v6], ports: [] };
  });
  const serverPod = cluster.events.find((e) => e.type === 'upsert' && e.kind === 'Pod' && e.object.name === SERVER.name && e.object.namespace === SERVER.namespace);
  if (serverPod === undefined || serverPod.type !== 'upsert' || serverPod.kind !== 'Pod') throw new Error(`the packet cluster has no pod ${SERVER.namespace}/${SERVER.name}`);
  const events = [
    ...cluster.events.filter((e) => e !== serverPod),
    { type: 'upsert', kind: 'Pod', object: { ...serverPod.object, ips: [SERVER.ip, SERVER_V6] } } as const,
    { type: 'upsert', kind: 'Namespace', object: ns(CLIENT_NS, { purpose: 'bench-clients' }) } as const,
    ...clientPods.map((object) => ({ type: 'upsert', kind: 'Pod', object }) as const),
  ];
  const { compiler } = compile(node, events);
  for (const object of pathPolicies(cluster.serverPolicies)) compiler.apply({ type: 'upsert', kind: 'NetworkPolicy', object });
  const elementsC = [...compiler.elements()];
  // (b): the same rule table without the server's isolation, so switching is one small delta (the
  // server's dispatch and group chain go or come) instead of the 50 policies' hundreds of thousands
  // of peer elements; unbound rules program nothing, so the kernel holds what a table without the
  // 50 policies would hold, plus the client pods' own groups (the source side: never consulted).
  const serverIsolation = elementsC.filter((e) => e.kind === 'isolation' && e.pod === `${SERVER.namespace}/${SERVER.name}`);
  const elementsB = elementsC.filter((e) => !serverIsolation.includes(e));
  const toC: RuleTableDelta = { added: serverIsolation, removed: [] };
  const toB: RuleTableDelta = { added: [], removed: serverIsolation };

  const serverKey = `${SERVER.namespace}/${SERVER.name}`;
  const sandbox = await Sandbox.create({
    prefix: 'bench-pp',
    topology: 'routed',
    nodes: [node],
    pods: [
      { key: serverKey, node, ips: [SERVER.ip, SERVER_V6], ports: [] },
      ...CLIENTS.map((c) => ({ key: c.key, node, ips: [c.v4, c.v6], ports: [] })),
    ],
  });
  const netns = sandbox.nodeNetnsPath(node);
  const nft = new NftContext({ netns });
  const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns });
  let server: ChildProcess | null = null;
  try {
    server = await startServer(sandbox, bin);
    // One Dataplane per logging setting; the one in use owns the table (a full sync when it takes over).
    const planes = { on: new Dataplane(backend, { logging: DEFAULT_DROP_LOGGING }), off: new Dataplane(backend) };
    let owner: { plane: 'on' | 'off'; state: 'b' | 'c' } | null = null;
    const CONNTRACK_ONLY = 'bench_conntrack_only';
    const dropTables = (): void => {
      const tables = JSON.stringify(nft.listSync('list tables'));
      for (const t of [DEFAULT_TABLE, CONNTRACK_ONLY]) if (tables.includes(`"name":"${t}"`)) nft.runSync(`delete table inet ${t}`);
    };
    const program = async (config: 'a' | 'a-ct' | 'b' | 'c', logging: boolean): Promise<void> => {
      if (config === 'a' || config === 'a-ct') {
        dropTables();
        owner = null;
        if (config === 'a-ct') nft.runSync(`add table inet ${CONNTRACK_ONLY}\nadd chain inet ${CONNTRACK_ONLY} forward { type filter hook forward priority 0; policy accept; }\nadd rule inet ${CONNTRACK_ONLY} forward ct state established,related accept\n`);
        return;
      }
      const plane = logging ? 'on' : 'off';
      const current = owner as { plane: 'on' | 'off'; state: 'b' | 'c' } | null;
      if (current === null || current.plane !== plane) {
        dropTables();
        await planes[plane].sync(config === 'b' ? elementsB : elementsC);
      } else if (current.state !== config) await planes[plane].apply(config === 'b' ? toB : toC);
      owner = { plane, state: config };
    };
    const measure = async (path: Path): Promise<number> => {
      const target = path.family === 4 ? SERVER.ip : SERVER_V6;
      const port = path.mode === 'syn' ? CLOSED_PORT : BENCH_PORT;
      const r = await sandbox.exec(path.client.key, [bin, path.mode === 'syn' ? 'syn' : 'client', target, String(port), String(SECONDS)], (SECONDS + 20) * 1000);
      const parsed = parseClient(r.stdout);
      if (r.code !== 0 || parsed === null) throw new Error(`connrate ${path.mode} from ${path.client.key} failed (${String(r.code)}): ${r.stdout.trim()} ${r.stderr.trim()}`);
      if (path.mode === 'connect' && parsed.errors > 0) throw new Error(`path "${path.name}": ${parsed.errors} connections failed (${parsed.firstError}); the client must be admitted`);
      return parsed.connections / parsed.seconds;
    };
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 200));

    console.log(`dataplane per-packet paths: ${fmt(cluster.pods + clientPods.length)} pods (reference cluster + bench pods), ${fmt(cluster.syntheticPolicies)} synthetic policies + 50 selecting the server ${serverKey} (${SERVER.ip}, ${SERVER_V6}) on ${node}, routed sandbox`);
    console.log(`  rule table: (b) ${fmt(elementsB.length)} elements, (c) ${fmt(elementsC.length)}; (b)<->(c): one Dataplane.apply of the server's ${serverIsolation.length} isolation elements`);
    console.log(`  rounds: ${ROUNDS}, ${SECONDS} s per measurement, every path as (b) (c) (b) with its own client; load average at start: ${loadStart} (${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} CPUs)`);

    // Where each path's packets are decided in (c): the server's group chain, and that every client is admitted or not.
    await program('c', true);
    const chain = planes.on.implementationOf(serverKey, 'ingress')?.chain ?? null;
    if (chain === null) throw new Error(`${serverKey} is not isolated for ingress in (c)`);
    const listing = await sandbox.exec(`node:${node}`, ['nft', 'list', 'chain', 'inet', DEFAULT_TABLE, chain], 10_000);
    console.log(`  (c) ${serverKey} ingress -> chain ${chain}:\n${listing.stdout.split('\n').filter((l) => /^\t\t/.test(l)).map((l) => `      ${l.trim()}`).join('\n')}`);
    const sets = await sandbox.exec(`node:${node}`, ['nft', '-j', 'list', 'sets', 'inet'], 30_000);
    const sizes = (JSON.parse(sets.stdout) as { nftables: { set?: { name: string; elem?: unknown[] } }[] }).nftables
      .flatMap((o) => (o.set !== undefined && o.set.name.startsWith(`${chain}_`) ? [`${o.set.name.slice(chain.length + 1)} ${o.set.elem?.length ?? 0}`] : []));
    console.log(`  its sets (elements): ${sizes.join(', ')}`);
    const roleOf = async (path: Path): Promise<string> => {
      const before = (await planes.on.counters()).find((g) => g.chain === chain)?.counters ?? {};
      const probe = await sandbox.probe([{ from: path.client.key, toIp: path.family === 4 ? SERVER.ip : SERVER_V6, port: path.mode === 'syn' ? CLOSED_PORT : BENCH_PORT, protocol: 'TCP', timeoutMs: 1000 }]);
      const after = (await planes.on.counters()).find((g) => g.chain === chain)?.counters ?? {};
      const hit = Object.entries(after).filter(([role, c]) => c.packets > (before[role as keyof typeof before]?.packets ?? 0)).map(([role]) => role);
      return `${probe[0]?.outcome ?? 'error'} (rule: ${hit.join(', ') || 'none counted'})`;
    };
    const decided = new Map<Path, string>();
    for (const p of paths.filter((x) => x.logging)) decided.set(p, await roleOf(p));
    for (const p of paths.filter((x) => !x.logging)) decided.set(p, decided.get(paths.find((x) => x.client === p.client && x.family === p.family && x.logging) as Path) ?? '');

    const ratios = new Map<string, number[]>();
    const noise: number[] = [];
    const rates = new Map<string, number[]>();
    const push = <T>(m: Map<string, T[]>, k: string, v: T): void => {
      m.set(k, [...(m.get(k) ?? []), v]);
    };
    const fixedCost = CLIENTS[0] as Client;
    const fixedPath: Path = { name: '(a) no table', client: fixedCost, family: 4, mode: 'connect', logging: true };
    const loads: string[] = [];
    await program('b', true);
    await measure(fixedPath); // warm-up, not reported
    for (let round = 0; round < ROUNDS; round++) {
      // Paths in a rotated order, grouped by logging so a round switches the owning Dataplane twice.
      const order = [...paths.slice(round % paths.length), ...paths.slice(0, round % paths.length)].sort((x, y) => Number(y.logging) - Number(x.logging));
      const triple = async (path: Path, config: 'a' | 'a-ct' | 'c', key: string): Promise<void> => {
        await program('b', path.logging);
        await settle();
        const before = await measure(path);
        await program(config, path.logging);
        await settle();
        const x = await measure(path);
        await program('b', path.logging);
        await settle();
        const after = await measure(path);
        push(ratios, key, x / ((before + after) / 2));
        push(rates, key, x);
        push(rates, `${key} (b)`, (before + after) / 2);
        noise.push(after / before);
      };
      for (const path of order) await triple(path, 'c', path.name);
      await triple(fixedPath, 'a', '(a) no table at all / (b)');
      await triple(fixedPath, 'a-ct', "(a') no table of ours, conntrack on / (b)");
      loads.push(loadAverage());
      console.log(`  round ${round + 1}/${ROUNDS} done, load average ${loads[loads.length - 1]}`);
    }
    dropTables();

    const rows = [...ratios].map(([key, xs]) => {
      const path = paths.find((p) => p.name === key);
      return [key, fmt(median(rates.get(key) ?? [])), fmt(median(rates.get(`${key} (b)`) ?? [])), median(xs).toFixed(3), range(xs), xs.map((x) => x.toFixed(3)).join(' '), path === undefined ? '' : (decided.get(path) ?? '')];
    });
    console.log(`\nper path: rate in (c) (connections/s, SYN/s for denials) and of the (b) around it, median over ${ROUNDS} rounds; ratio (c)/(b) per round`);
    printTable(['path', '(c) /s', '(b) /s', 'ratio median', 'min..max', 'per round', 'in (c)'], [
      ...rows,
      ['noise floor: (b) / the (b) before it', '', '', median(noise).toFixed(3), range(noise), `${noise.length} ratios`, ''],
    ]);
    const allowed = paths.filter((p) => p.mode === 'connect').map((p) => ({ p, r: median(ratios.get(p.name) ?? []) }));
    const worst = allowed.sort((x, y) => x.r - y.r)[0];
    const denials = paths.filter((p) => p.mode === 'syn').map((p) => ({ p, r: median(ratios.get(p.name) ?? []) }));
    const inFloor = noise.filter((x) => Math.abs(x - 1) <= 0.05).length;
    const sortedNoise = [...noise].sort((a, b) => a - b);
    const p10 = sortedNoise[Math.floor(0.1 * (sortedNoise.length - 1))] ?? NaN;
    const p90 = sortedNoise[Math.ceil(0.9 * (sortedNoise.length - 1))] ?? NaN;
    const quiet = inFloor === noise.length;
    console.log(`noise floor within +-5%: ${quiet ? 'yes' : 'NO'} (${inFloor} of ${noise.length} (b)/(b) ratios within 0.95..1.05; p10..p90 ${p10.toFixed(3)}..${p90.toFixed(3)}, min..max ${range(noise)})`);
    if (!quiet) console.log('  the verdicts below compare medians inside a wider noise floor: run longer (BENCH_CONN_SECONDS) or more rounds (BENCH_CONN_ROUNDS), on a quieter machine, before trusting them');
    if (worst !== undefined) console.log(`worst allowed path: ${worst.p.name} ${worst.r.toFixed(3)}; every allowed path >= 0.97: ${allowed.every((x) => x.r >= 0.97) ? 'met' : 'NOT met'} (${allowed.filter((x) => x.r < 0.97).map((x) => `${x.p.name} ${x.r.toFixed(3)}`).join('; ') || 'all'})`);
    const fixed = median(ratios.get('(a) no table at all / (b)') ?? []);
    console.log(`fixed cost (a)/(b): ${fixed.toFixed(3)} (target <= 1.05: ${fixed <= 1.05 ? 'met' : 'NOT met'}); (a')/(b), conntrack on without our table: ${median(ratios.get("(a') no table of ours, conntrack on / (b)") ?? []).toFixed(3)}`);
    if (worst !== undefined) console.log(`denials at least as cheap as the worst allowed path (ratio >= ${worst.r.toFixed(3)}): ${denials.map((d) => `${d.p.name} ${d.r.toFixed(3)} ${d.r >= worst.r ? 'yes' : 'NO'}`).join('; ')}`);
    console.log(`load average: start ${loadStart}; after each round ${loads.join(' | ')}\n`);
  } finally {
    backend.close();
    nft.close();
    if (server !== null && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    await sandbox.destroy();
  }
}
