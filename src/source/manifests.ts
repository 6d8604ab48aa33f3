// Reads Namespaces, Pods and NetworkPolicies from YAML or JSON manifests: files, directories of them,
// multi-document streams and `kind: List`. Every error names the file and the object.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { NamespaceState, PodState, PolicyState } from '../api';
import { InvalidInputError, InvalidObjectError } from '../errors';
import { parseNamespace, parseNetworkPolicy, parsePod } from '../model';

export interface ClusterObjects {
  readonly namespaces: NamespaceState[];
  readonly pods: PodState[];
  readonly policies: PolicyState[];
  /** Kinds that were read but play no part in enforcement (Services, Deployments...). */
  readonly ignored: string[];
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

function listFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    throw new InvalidInputError(path, 'cannot read: no such file or directory', { cause: err });
  }
  if (!stat.isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((entry) => {
      const full = join(path, entry);
      return statSync(full).isDirectory() ? listFiles(full) : MANIFEST_FILE.test(entry) ? [full] : [];
    });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function emptyClusterObjects(): ClusterObjects {
  return { namespaces: [], pods: [], policies: [], ignored: [] };
}

/** Objects already decoded (from the API, or built by tests); `source` names them in errors. */
export function decodeObjects(objects: readonly unknown[], source: string): ClusterObjects {
  const out = emptyClusterObjects();
  objects.forEach((o, i) => addObject(out, source, o, `object ${i + 1}`));
  return out;
}

export function loadManifests(paths: readonly string[]): ClusterObjects {
  const out = emptyClusterObjects();
  for (const file of paths.flatMap(listFiles)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new InvalidInputError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
    }
    const docs = parseAllDocuments(text);
    for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
      if (doc.errors.length > 0) {
        const first = doc.errors[0];
        throw new InvalidInputError(file, `document ${i + 1} is not valid YAML: ${first?.message.split('\n')[0] ?? 'parse error'}`);
      }
      addObject(out, file, doc.toJS(), `document ${i + 1}`);
    }
  }
  return out;
}

export function addObject(out: ClusterObjects, file: string, obj: unknown, where: string): void {
  if (obj === null || obj === undefined) return;
  if (!isRecord(obj)) throw new InvalidInputError(file, `${where} is not a Kubernetes object`);
  const kind = obj['kind'];
  try {
    switch (kind) {
      case 'List':
      case 'NamespaceList':
      case 'PodList':
      case 'NetworkPolicyList': {
        const items = obj['items'];
        if (!Array.isArray(items)) throw new InvalidInputError(file, `${where}: ${kind} without an items list`);
        items.forEach((item, j) => addObject(out, file, item, `${where} item ${j + 1}`));
        return;
      }
      case 'Namespace':
        out.namespaces.push(parseNamespace(obj));
        return;
      case 'Pod':
        out.pods.push(parsePod(obj));
        return;
      case 'NetworkPolicy':
        if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== 'networking.k8s.io/v1') {
          throw new InvalidInputError(file, `${where}: NetworkPolicy with apiVersion ${String(obj['apiVersion'])}: only networking.k8s.io/v1 is supported`);
        }
        out.policies.push(parseNetworkPolicy(obj));
        return;
      default:
        if (typeof kind !== 'string') throw new InvalidInputError(file, `${where} has no kind`);
        out.ignored.push(kind);
    }
  } catch (err) {
    if (err instanceof InvalidObjectError) throw new InvalidInputError(file, err.message, { cause: err });
    throw err;
  }
}
