// probe's two outputs: one JSON object for machines, a truth table per port for people.
import type { ProbeResult } from './compute';

export function formatJson(results: readonly ProbeResult[]): string {
  return JSON.stringify({ results }, null, 0);
}

/** One matrix per protocol/port, rows are sources, columns destinations: "." allowed, "X" denied. */
export function formatTable(results: readonly ProbeResult[]): string {
  const groups = new Map<string, ProbeResult[]>();
  for (const r of results) {
    const key = `${r.protocol}/${r.port}`;
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = []));
    g.push(r);
  }
  const blocks: string[] = [];
  for (const [key, rs] of [...groups].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const froms = [...new Set(rs.map((r) => r.from))].sort();
    const tos = [...new Set(rs.map((r) => r.to))].sort();
    const cell = new Map(rs.map((r) => [`${r.from}\0${r.to}`, r.allowed ? '.' : 'X']));
    const width = Math.max(key.length, ...froms.map((f) => f.length));
    const colWidth = Math.max(...tos.map((t) => t.length));
    const lines = [[key.padEnd(width), ...tos.map((t) => t.padEnd(colWidth))].join(' ')];
    for (const f of froms) lines.push([f.padEnd(width), ...tos.map((t) => (cell.get(`${f}\0${t}`) ?? '-').padEnd(colWidth))].join(' '));
    const denied = rs.filter((r) => !r.allowed).length;
    lines.push(`${rs.length - denied} allowed, ${denied} denied ("." allowed, "X" denied, "-" not probed)`);
    blocks.push(lines.join('\n'));
  }
  return blocks.length === 0 ? 'no pod pairs to probe (pods need IPs and declared container ports)' : blocks.join('\n\n');
}
