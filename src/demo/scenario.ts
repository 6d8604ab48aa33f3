// A demo scenario: the manifests split into what the cluster holds from the start and the policies the
// walkthrough applies, as YAML text for the agents' datastore file (documents kept as written).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadManifests } from '../source';
import type { ClusterObjects } from '../source';

const MANIFEST_FILE = /\.(ya?ml|json)$/i;
const POLICY_KINDS = new Set(['NetworkPolicy', 'NetworkPolicyList']);

export interface Scenario {
  /** Every object, checked as the agent checks them. */
  readonly objects: ClusterObjects;
  /** Documents other than NetworkPolicies: the datastore before the policy step. */
  readonly initial: string;
  /** The NetworkPolicy documents: what the policy step adds. */
  readonly policies: string;
  /** The files the policies came from (what `kubectl apply -f` would name). */
  readonly policyFiles: readonly string[];
}

function manifestFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, encoding: 'utf8' })
    .filter((name) => MANIFEST_FILE.test(name))
    .sort()
    .map((name) => join(path, name));
}

/** One multi-document YAML stream. */
function asStream(docs: readonly string[]): string {
  return docs.map((d) => (d.startsWith('---') ? d : `---\n${d}`)).join('');
}

/** Reads and checks the scenario (loadManifests reports bad input with file, object and field). */
export function loadScenario(paths: readonly string[]): Scenario {
  const objects = loadManifests(paths);
  const initial: string[] = [];
  const policies: string[] = [];
  const policyFiles = new Set<string>();
  for (const file of paths.flatMap(manifestFiles)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.contents === null) continue;
      const kind = doc.get('kind');
      const isPolicy = typeof kind === 'string' && POLICY_KINDS.has(kind);
      (isPolicy ? policies : initial).push(doc.toString());
      if (isPolicy) policyFiles.add(file);
    }
  }
  return { objects, initial: asStream(initial), policies: asStream(policies), policyFiles: [...policyFiles] };
}
