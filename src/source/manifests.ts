// Reads Namespaces, Pods and NetworkPolicies from YAML or JSON manifests: files, directories of them,
// multi-document streams and `kind: List`. Every error names the file, the document and the object.
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { Composer, LineCounter, Parser, isScalar, visit, type Document, type ScalarTag, type Tags } from 'yaml';
import { objectKey } from '../api';
import type { NamespaceState, PodState, PolicyState } from '../api';
import { InvalidInputError, InvalidObjectError, errorMessage } from '../errors';
import { parseNamespace, parseNetworkPolicy, parsePod } from '../parse';
import { isRecord } from '../json';

export interface ClusterObjects {
  readonly namespaces: NamespaceState[];
  readonly pods: PodState[];
  readonly policies: PolicyState[];
  /** Kinds that were read but play no part in enforcement (Services, Deployments...). */
  readonly ignored: string[];
}

export interface LoadOptions {
  /**
   * Where warnings go: an object that is ignored although it looks meant for us (a misspelt kind, a
   * NetworkPolicy of another apiVersion). Default: stderr.
   */
  readonly warn?: (message: string) => void;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** Alias expansions allowed per document: enough for real manifests, far from a "billion laughs" bomb. */
const MAX_ALIAS_COUNT = 100;

/**
 * kubectl decodes YAML with go-yaml, for which the YAML 1.1 words y/yes/on and n/no/off are booleans
 * (`access: yes` is refused as a label value). The core schema alone would read them as strings.
 */
const GO_YAML_BOOLEANS: ScalarTag[] = [true, false].map((value) => ({
  tag: 'tag:yaml.org,2002:bool',
  default: true,
  identify: (v: unknown) => v === value,
  test: value ? /^(?:y|Y|yes|Yes|YES|on|On|ON)$/ : /^(?:n|N|no|No|NO|off|Off|OFF)$/,
  resolve: () => value,
}));

/**
 * YAML as kubectl reads it: go-yaml's booleans, and `<<` merge keys. The yaml library's own check for
 * duplicate keys compares each key with every earlier key of its mapping (100,000 keys: over a minute
 * with the event loop blocked); it is off, and duplicateKey() does the same check with a set per mapping.
 */
const GO_YAML = { customTags: (tags: Tags): Tags => [...tags, ...GO_YAML_BOOLEANS], merge: true, uniqueKeys: false };

/**
 * The largest YAML manifest read, in bytes of text. The yaml library parses in one synchronous call that
 * blocks the event loop (health probes, SIGTERM) for its whole length: about 2.5 s per MiB of one-word
 * keys, its worst case, and far less for real manifests (a MiB holds about 1,000 Pods). JSON has no such
 * limit: JSON.parse is two orders of magnitude faster. The file datastore yields between files.
 */
export const MAX_YAML_BYTES = 1024 * 1024;

/** The kinds we read, with the one apiVersion each is served at. */
const OUR_KINDS: Readonly<Record<string, string>> = { Namespace: 'v1', Pod: 'v1', NetworkPolicy: 'networking.k8s.io/v1' };
const LIST_KINDS = ['List', 'NamespaceList', 'PodList', 'NetworkPolicyList'];

function fsProblem(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'ELOOP': return 'too many levels of symbolic links';
    default: return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

function statOf(path: string): Stats {
  try {
    return statSync(path);
  } catch (err) {
    const problem = lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true
      ? `broken symbolic link to ${readlinkSync(path)} (${fsProblem(err)})`
      : fsProblem(err);
    throw new InvalidInputError(path, `cannot read: ${problem}`, { cause: err });
  }
}

/** Manifest files under `path`, each once (by real path), in a stable order. */
function listFiles(path: string, seen: Set<string>): string[] {
  const stat = statOf(path);
  const real = realpathSync(path);
  if (seen.has(real)) return []; // given twice, or a symbolic link back to a directory being read
  seen.add(real);
  if (!stat.isDirectory()) return [path];
  let entries: string[];
  try {
    entries = readdirSync(path).sort();
  } catch (err) {
    throw new InvalidInputError(path, `cannot read: ${fsProblem(err)}`, { cause: err });
  }
  return entries.flatMap((entry) => {
    const full = join(path, entry);
    return statOf(full).isDirectory() || MANIFEST_FILE.test(entry) ? listFiles(full, seen) : [];
  });
}

/** One substitution, insertion, deletion or swap of neighbours turns `a` into `b`. */
function withinOneEdit(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const rest = (x: string, skip: number): string => x.slice(i + skip);
  const swapped = a[i] === b[i + 1] && a[i + 1] === b[i] && rest(a, 2) === rest(b, 2);
  return swapped || rest(a, 1) === rest(b, 1) || rest(a, 1) === rest(b, 0) || rest(a, 0) === rest(b, 1);
}

/** The kind of ours that `kind` is probably a typo of (other case, or one edit away), or null. */
function lookalikeOf(kind: string): string | null {
  const lower = kind.toLowerCase();
  return [...Object.keys(OUR_KINDS), ...LIST_KINDS].find((k) => k.toLowerCase() === lower || withinOneEdit(k.toLowerCase(), lower)) ?? null;
}

export function emptyClusterObjects(): ClusterObjects {
  return { namespaces: [], pods: [], policies: [], ignored: [] };
}

/**
 * Where each object of a ClusterObjects was read ("kind namespace/name" -> "file document n"), so that a
 * second definition of the same object is refused with both places named.
 */
const origins = new WeakMap<ClusterObjects, Map<string, string>>();

function stderrWarning(message: string): void {
  process.stderr.write(`netpol-agent: warning: ${message}\n`);
}

/**
 * The documents of one manifest file, as kubectl would read them. JSON is YAML too, but JSON.parse
 * reads it two orders of magnitude faster, and the yaml library's document tree of a 50 MB file does
 * not fit in a 4 GB heap: *.json files, and JSON written under a YAML name (generated datastores),
 * never go through it. YAML is composed one document at a time, so each document's tree is garbage
 * once converted.
 */
export function parseManifestText(file: string, text: string): unknown[] {
  if (/\.json$/i.test(file)) {
    try {
      return [JSON.parse(text) as unknown];
    } catch (err) {
      throw new InvalidInputError(file, `is not valid JSON: ${errorMessage(err)}`, { cause: err });
    }
  }
  if (/^\s*[{[]/.test(text)) {
    try {
      return [JSON.parse(text) as unknown];
    } catch {
      // YAML flow style, or broken JSON: the YAML parser reads the one and reports the other.
    }
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_YAML_BYTES) {
    throw new InvalidInputError(file, `is ${(bytes / 1024 / 1024).toFixed(1)} MiB of YAML, more than the ${MAX_YAML_BYTES / 1024 / 1024} MiB read from one YAML file: split it into several files, or write it as JSON`);
  }
  const out: unknown[] = [];
  const lines = new LineCounter();
  for (const doc of new Composer(GO_YAML).compose(new Parser(lines.addNewLine).parse(text))) {
    const where = `document ${out.length + 1}`;
    const first = firstProblem(doc, lines);
    if (first !== null) throw new InvalidInputError(file, `${where} is not valid YAML: ${first}`);
    try {
      out.push(doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }));
    } catch (err) {
      // An alias bomb (more than MAX_ALIAS_COUNT expansions) or an alias without its anchor.
      throw new InvalidInputError(file, `${where} is not valid YAML: ${errorMessage(err)}`, { cause: err });
    }
  }
  return out;
}

/** A mapping's key that an earlier key of the same mapping equals (same rule as the yaml library's), or null. */
function duplicateKey(doc: Document.Parsed): { offset: number } | null {
  let found: { offset: number } | null = null;
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue; // a collection as a key equals no other key
        if (seen.has(pair.key.value)) {
          const at = pair.key.range?.[0] ?? 0;
          if (found === null || at < found.offset) found = { offset: at };
          break;
        }
        seen.add(pair.key.value);
      }
    },
  });
  return found;
}

/** The first line of the first problem of a document, in text order, or null; as the yaml library words it. */
function firstProblem(doc: Document.Parsed, lines: LineCounter): string | null {
  const error = doc.errors[0];
  const duplicate = duplicateKey(doc);
  if (duplicate !== null && (error === undefined || duplicate.offset < error.pos[0])) {
    const { line, col } = lines.linePos(duplicate.offset);
    return `Map keys must be unique at line ${line}, column ${col}:`;
  }
  return error === undefined ? null : (error.message.split('\n')[0] ?? 'parse error');
}

/** Objects already decoded (from the API, or built by tests); `source` names them in errors. */
export function decodeObjects(objects: readonly unknown[], source: string, options: LoadOptions = {}): ClusterObjects {
  const out = emptyClusterObjects();
  objects.forEach((o, i) => addObject(out, source, o, `object ${i + 1}`, options));
  return out;
}

export function loadManifests(paths: readonly string[], options: LoadOptions = {}): ClusterObjects {
  const out = emptyClusterObjects();
  const seen = new Set<string>();
  for (const file of paths.flatMap((p) => listFiles(p, seen))) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new InvalidInputError(file, `cannot read: ${fsProblem(err)}`, { cause: err });
    }
    parseManifestText(file, text).forEach((obj, i) => addObject(out, file, obj, `document ${i + 1}`, options));
  }
  return out;
}

/**
 * Adds one decoded object (or the items of a List) to `out`. Objects of other kinds are ignored: silently
 * when they are simply not ours (a Service), with a warning when they look meant for us. Defining the
 * same object twice is an error: `kubectl apply` would keep the last one, but a what-if answer must not
 * depend on the order the files were read in.
 */
export function addObject(out: ClusterObjects, file: string, obj: unknown, where: string, options: LoadOptions = {}): void {
  if (obj === null || obj === undefined) return;
  if (!isRecord(obj)) throw new InvalidInputError(file, `${where} is not a Kubernetes object`);
  const warn = options.warn ?? stderrWarning;
  const kind = obj['kind'];
  if (typeof kind !== 'string' || kind === '') throw new InvalidInputError(file, `${where} has no kind`);
  if (LIST_KINDS.includes(kind)) {
    const items = obj['items'];
    if (!Array.isArray(items)) throw new InvalidInputError(file, `${where}: ${kind} without an items list`);
    items.forEach((item, j) => addObject(out, file, item, `${where} item ${j + 1}`, options));
    return;
  }
  const apiVersion = OUR_KINDS[kind];
  if (apiVersion === undefined) {
    const lookalike = lookalikeOf(kind);
    if (lookalike !== null) warn(`${file}: ${where}: kind ${JSON.stringify(kind)} is not one we read; did you mean ${lookalike}? The object is ignored`);
    out.ignored.push(kind);
    return;
  }
  // Without an apiVersion (objects written by hand or by tests) the kind alone says what it is.
  if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== apiVersion) {
    warn(`${file}: ${where}: ${kind} with apiVersion ${JSON.stringify(obj['apiVersion'])} is ignored: only ${apiVersion} is read`);
    out.ignored.push(kind);
    return;
  }
  try {
    switch (kind) {
      case 'Namespace': {
        const namespace = parseNamespace(obj);
        claim(out, file, where, `Namespace ${namespace.name}`);
        out.namespaces.push(namespace);
        return;
      }
      case 'Pod': {
        const pod = parsePod(obj);
        claim(out, file, where, `Pod ${objectKey(pod)}`);
        out.pods.push(pod);
        return;
      }
      default: {
        const policy = parseNetworkPolicy(obj);
        claim(out, file, where, `NetworkPolicy ${objectKey(policy)}`);
        out.policies.push(policy);
      }
    }
  } catch (err) {
    if (err instanceof InvalidObjectError) throw new InvalidInputError(file, err.message, { cause: err });
    throw err;
  }
}

function claim(out: ClusterObjects, file: string, where: string, identity: string): void {
  let seen = origins.get(out);
  if (seen === undefined) {
    seen = new Map();
    origins.set(out, seen);
  }
  const here = `${file} ${where}`;
  const first = seen.get(identity);
  if (first !== undefined) throw new InvalidInputError(file, `${where}: ${identity} is defined twice (first in ${first}): keep one of them`);
  seen.set(identity, here);
}
