// The tools the chart's tests run: helm (scripts/build-helm.sh) and kubectl (test/e2e/cluster/build.sh),
// both built from the Go module proxy into the e2e cache (E2E_CACHE) and reused once built.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = resolve(__dirname, '../../..');
export const CHART = join(REPO_ROOT, 'charts/netpol-agent');
export const CHART_NAMESPACE = 'netpol-agent';

/** Runs a build script and returns the last line it prints (the path it built). */
function built(script: string): string {
  const out = execFileSync('bash', [join(REPO_ROOT, script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60 * 60_000 });
  const last = out.trim().split('\n').pop();
  if (last === undefined || last === '') throw new Error(`${script} printed no path`);
  return last;
}

export function helmBinary(): string {
  return built('scripts/build-helm.sh');
}

export function kubectlBinary(): string {
  return join(built('test/e2e/cluster/build.sh'), 'kubectl');
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** The objects of a multi-document YAML stream (empty documents left out). */
export function parseObjects(yaml: string, where: string): KubeObject[] {
  return parseAllDocuments(yaml).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as KubeObject | null;
    return value === null ? [] : [value];
  });
}

/** kind namespace/name: one object's identity in an apply. */
export function objectId(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** `helm template` of the chart in the agent's namespace, with `--set`/`--set-json` style arguments. */
export function helmTemplate(helm: string, args: readonly string[] = []): string {
  return execFileSync(helm, ['template', 'netpol-agent', CHART, '--namespace', CHART_NAMESPACE, ...args], { encoding: 'utf8', timeout: 120_000 });
}
