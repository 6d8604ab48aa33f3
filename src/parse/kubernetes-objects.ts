// Turns Kubernetes objects (as decoded from YAML/JSON or the API) into the compact, validated cluster
// model. Validation follows the API server's rules for the fields enforcement reads, so that a bad
// object is refused here with a message naming it, instead of being enforced wrongly later.
import type {
  ContainerPort, LabelRequirement, Labels, NamespaceState, ObjectRef, PodState, PolicyPeer, PolicyRule,
  PolicyState, PortSpec, Protocol, Selector,
} from '../api';
import { PROTOCOLS } from '../api';
import { InvalidObjectError } from '../errors';
import { canonicalIp, cidrContainsCidr, parseCidr } from '../net/ip';
import { isRecord } from '../json';

type Json = Record<string, unknown>;

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const FINISHED_PHASES = new Set(['Succeeded', 'Failed']);

/** A finished pod has no traffic and its address may already belong to another pod. */
export function hasFinished(pod: PodState): boolean {
  return FINISHED_PHASES.has(pod.phase);
}

/** How a value that has the wrong JSON type is shown: its type and, for scalars, the value. */
function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (isRecord(v)) return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `the ${typeof v} ${String(v)}`;
}

// The API server's messages (k8s.io/apimachinery/pkg/util/validation), so an error reads the same here
// and from kubectl.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL_MESSAGE = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')";
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MESSAGE = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const QUALIFIED_NAME_MESSAGE = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')";
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_VALUE_MESSAGE = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345')";

function dns1123Label(name: string): string | null {
  if (name.length > 63) return 'must be no more than 63 characters';
  return DNS1123_LABEL.test(name) ? null : DNS1123_LABEL_MESSAGE;
}

function dns1123Subdomain(name: string): string | null {
  if (name.length > 253) return 'must be no more than 253 characters';
  return DNS1123_SUBDOMAIN.test(name) ? null : DNS1123_SUBDOMAIN_MESSAGE;
}

/** A label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
function qualifiedName(key: string): string | null {
  const parts = key.split('/');
  if (parts.length > 2) return `a qualified name ${QUALIFIED_NAME_MESSAGE}, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`;
  const name = parts.length === 2 ? parts[1] as string : key;
  if (parts.length === 2) {
    const prefix = parts[0] as string;
    if (prefix === '') return 'prefix part must be non-empty';
    const problem = dns1123Subdomain(prefix);
    if (problem !== null) return `prefix part ${problem}`;
  }
  if (name === '') return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  return QUALIFIED_NAME.test(name) ? null : `name part ${QUALIFIED_NAME_MESSAGE}`;
}

function labelValue(value: string): string | null {
  if (value.length > 63) return 'must be no more than 63 characters';
  return LABEL_VALUE.test(value) ? null : LABEL_VALUE_MESSAGE;
}

/** IANA_SVC_NAME (a named port): why `name` is not one, or null. */
function portNameProblem(name: string): string | null {
  if (name.length > 15) return 'must be no more than 15 characters';
  if (!/^[-a-z0-9]+$/.test(name)) return 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)';
  if (!/[a-z]/.test(name)) return 'must contain at least one letter (a-z)';
  if (name.includes('--')) return 'must not contain consecutive hyphens';
  if (name.startsWith('-') || name.endsWith('-')) return 'must not begin or end with a hyphen';
  return null;
}

/** IANA_SVC_NAME: 1-15 lowercase letters, digits and single hyphens, at least one letter, no hyphen at either end. */
export function isIanaServiceName(name: string): boolean {
  return name !== '' && portNameProblem(name) === null;
}

/**
 * Field access with the object's identity at hand for error messages. Every accessor checks the exact
 * JSON type the API declares for the field: a YAML `true`, `1e3` or `[80]` where a string or an integer
 * belongs is refused, never converted.
 */
class Reader {
  constructor(readonly kind: string, readonly ref: ObjectRef) {}

  fail(field: string, problem: string): never {
    throw new InvalidObjectError(this.kind, this.ref, field, problem);
  }

  invalid(field: string, value: unknown, problem: string): never {
    this.fail(field, `Invalid value: ${JSON.stringify(value)}: ${problem}`);
  }

  record(v: unknown, field: string): Json {
    if (v === undefined || v === null) return {};
    if (!isRecord(v)) this.fail(field, `must be an object, not ${describe(v)}`);
    return v;
  }

  list(v: unknown, field: string): unknown[] | null {
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v)) this.fail(field, `must be a list, not ${describe(v)}`);
    return v;
  }

  string(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(field, `must be a string, not ${describe(v)}${typeof v === 'number' || typeof v === 'boolean' ? ' (quote it)' : ''}`);
    return v;
  }

  boolean(v: unknown, field: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, not ${describe(v)}`);
    return v;
  }

  /** An int32 field: a JSON number without a fraction (the string "80" is not one). */
  integer(v: unknown, field: string): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `must be an integer, not ${describe(v)}`);
    return v;
  }

  labels(v: unknown, field: string): Labels {
    const rec = this.record(v, field);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(rec)) {
      validateLabelKey(this, field, k);
      const value = this.string(val, `${field}[${k}]`) ?? '';
      validateLabelValue(this, `${field}[${k}]`, value);
      out[k] = value;
    }
    return out;
  }

  protocol(v: unknown, field: string): Protocol {
    if (v === undefined || v === null) return 'TCP';
    if (typeof v !== 'string' || !(PROTOCOLS as readonly string[]).includes(v)) {
      this.fail(field, `unsupported protocol ${JSON.stringify(v)}: use TCP, UDP or SCTP`);
    }
    return v as Protocol;
  }
}

function validateLabelKey(r: Reader, field: string, key: string): void {
  const problem = qualifiedName(key);
  if (problem !== null) r.invalid(field, key, problem);
}

function validateLabelValue(r: Reader, field: string, value: string): void {
  const problem = labelValue(value);
  if (problem !== null) r.invalid(field, value, problem);
}

function portNumberProblem(port: number): string | null {
  return port >= 1 && port <= 65535 ? null : 'must be between 1 and 65535, inclusive';
}

/**
 * The object's name (and namespace), validated as the API server does: namespaces are DNS-1123 labels,
 * pods and policies DNS-1123 subdomains. Neither may contain '/', which keeps objectKey unambiguous.
 */
function metadata(kind: string, obj: Json, namespaced: boolean): { ref: ObjectRef; meta: Json } {
  const unnamed: ObjectRef = { namespace: '', name: '<unnamed>' };
  const meta = new Reader(kind, unnamed).record(obj['metadata'], 'metadata');
  const rawNamespace = namespaced ? meta['namespace'] : undefined;
  const namespace = typeof rawNamespace === 'string' && rawNamespace !== '' ? rawNamespace : namespaced ? 'default' : '';
  const rawName = meta['name'];
  const r = new Reader(kind, { namespace, name: typeof rawName === 'string' && rawName !== '' ? rawName : '<unnamed>' });
  const name = r.string(rawName, 'metadata.name') ?? '';
  if (name === '') r.fail('metadata.name', 'Required value: name is required');
  const nameProblem = namespaced ? dns1123Subdomain(name) : dns1123Label(name);
  if (nameProblem !== null) r.invalid('metadata.name', name, nameProblem);
  if (namespaced) {
    r.string(rawNamespace, 'metadata.namespace');
    const namespaceProblem = dns1123Label(namespace);
    if (namespaceProblem !== null) r.invalid('metadata.namespace', namespace, namespaceProblem);
  }
  return { ref: { namespace, name }, meta };
}

export function parseNamespace(obj: Json): NamespaceState {
  const { ref, meta } = metadata('Namespace', obj, false);
  const r: Reader = new Reader('Namespace', ref);
  // The API server always sets this label; objects read from files may lack it.
  return { name: ref.name, labels: { ...r.labels(meta['labels'], 'metadata.labels'), [NAMESPACE_NAME_LABEL]: ref.name } };
}

export function parsePod(obj: Json): PodState {
  const { ref, meta } = metadata('Pod', obj, true);
  const r: Reader = new Reader('Pod', ref);
  const spec = r.record(obj['spec'], 'spec');
  const status = r.record(obj['status'], 'status');
  const ips: string[] = [];
  const podIPs = r.list(status['podIPs'], 'status.podIPs') ?? [];
  const rawIps = podIPs.map((p, i) => ({ field: `status.podIPs[${i}].ip`, text: r.string(r.record(p, `status.podIPs[${i}]`)['ip'], `status.podIPs[${i}].ip`) }));
  if (rawIps.length === 0) rawIps.push({ field: 'status.podIP', text: r.string(status['podIP'], 'status.podIP') });
  for (const { field, text } of rawIps) {
    if (text === undefined || text === '') continue;
    const ip = canonicalIp(text);
    if (ip === null) r.fail(field, `${JSON.stringify(text)} is not an IP address`);
    if (!ips.includes(ip)) ips.push(ip);
  }
  const ports: ContainerPort[] = [];
  for (const [ci, c] of (r.list(spec['containers'], 'spec.containers') ?? []).entries()) {
    const container = r.record(c, `spec.containers[${ci}]`);
    const names = new Set<string>();
    for (const [pi, p] of (r.list(container['ports'], `spec.containers[${ci}].ports`) ?? []).entries()) {
      const field = `spec.containers[${ci}].ports[${pi}]`;
      const port = r.record(p, field);
      const number = r.integer(port['containerPort'], `${field}.containerPort`);
      if (number === undefined || number === 0) r.fail(`${field}.containerPort`, 'Required value');
      const numberProblem = portNumberProblem(number);
      if (numberProblem !== null) r.invalid(`${field}.containerPort`, number, numberProblem);
      const name = r.string(port['name'], `${field}.name`);
      if (name !== undefined && name !== '') {
        const problem = portNameProblem(name);
        if (problem !== null) r.invalid(`${field}.name`, name, `not a valid IANA_SVC_NAME: ${problem}`);
        if (names.has(name)) r.fail(`${field}.name`, `Duplicate value: ${JSON.stringify(name)}`);
        names.add(name);
      }
      const protocol = r.protocol(port['protocol'], `${field}.protocol`);
      ports.push(name === undefined || name === '' ? { port: number, protocol } : { name, port: number, protocol });
    }
  }
  return {
    namespace: ref.namespace,
    name: ref.name,
    uid: r.string(meta['uid'], 'metadata.uid') ?? '',
    labels: r.labels(meta['labels'], 'metadata.labels'),
    nodeName: r.string(spec['nodeName'], 'spec.nodeName') ?? '',
    hostNetwork: r.boolean(spec['hostNetwork'], 'spec.hostNetwork') ?? false,
    phase: r.string(status['phase'], 'status.phase') ?? 'Pending',
    ips,
    ports,
  };
}

function parseSelector(r: Reader, v: unknown, field: string): Selector {
  const sel = r.record(v, field);
  const requirements: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(r.labels(sel['matchLabels'], `${field}.matchLabels`))) {
    requirements.push({ key, operator: 'In', values: [value] });
  }
  for (const [i, e] of (r.list(sel['matchExpressions'], `${field}.matchExpressions`) ?? []).entries()) {
    const f = `${field}.matchExpressions[${i}]`;
    const expr = r.record(e, f);
    const key = r.string(expr['key'], `${f}.key`);
    if (key === undefined) r.fail(`${f}.key`, 'is required');
    validateLabelKey(r, `${f}.key`, key);
    const operator = expr['operator'];
    const values = (r.list(expr['values'], `${f}.values`) ?? []).map((x, j) => {
      const value = r.string(x, `${f}.values[${j}]`) ?? '';
      validateLabelValue(r, `${f}.values[${j}]`, value);
      return value;
    });
    switch (operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) r.fail(`${f}.values`, `must be non-empty for operator ${operator}`);
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length !== 0) r.fail(`${f}.values`, `must be empty for operator ${operator}`);
        break;
      default:
        r.fail(`${f}.operator`, `invalid operator ${JSON.stringify(operator)}: use In, NotIn, Exists or DoesNotExist`);
    }
    requirements.push({ key, operator, values });
  }
  return { requirements };
}

function parsePeer(r: Reader, v: unknown, field: string): PolicyPeer {
  const peer = r.record(v, field);
  const hasPods = peer['podSelector'] !== undefined && peer['podSelector'] !== null;
  const hasNamespaces = peer['namespaceSelector'] !== undefined && peer['namespaceSelector'] !== null;
  const hasBlock = peer['ipBlock'] !== undefined && peer['ipBlock'] !== null;
  if (hasBlock) {
    if (hasPods || hasNamespaces) r.fail(field, 'ipBlock may not be combined with podSelector or namespaceSelector');
    const block = r.record(peer['ipBlock'], `${field}.ipBlock`);
    const cidrText = r.string(block['cidr'], `${field}.ipBlock.cidr`);
    if (cidrText === undefined || cidrText === '') r.fail(`${field}.ipBlock.cidr`, 'Required value');
    const cidr = parseCidr(cidrText);
    if (cidr === null) r.fail(`${field}.ipBlock.cidr`, `${JSON.stringify(cidrText)} is not a valid CIDR`);
    const except = (r.list(block['except'], `${field}.ipBlock.except`) ?? []).map((x, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      const text = r.string(x, f) ?? '';
      const e = parseCidr(text);
      if (e === null) r.fail(f, `${JSON.stringify(text)} is not a valid CIDR`);
      if (!cidrContainsCidr(cidr, e) || e.prefix === cidr.prefix) r.fail(f, `${text} must be a strict subset of ${cidrText}`);
      return text;
    });
    return { kind: 'ipBlock', cidr: cidrText, except };
  }
  if (!hasPods && !hasNamespaces) r.fail(field, 'a peer must set podSelector, namespaceSelector or ipBlock');
  return {
    kind: 'pods',
    podSelector: parseSelector(r, peer['podSelector'], `${field}.podSelector`),
    namespaceSelector: hasNamespaces ? parseSelector(r, peer['namespaceSelector'], `${field}.namespaceSelector`) : null,
  };
}

function parsePort(r: Reader, v: unknown, field: string): PortSpec {
  const p = r.record(v, field);
  const protocol = r.protocol(p['protocol'], `${field}.protocol`);
  const port = p['port'];
  const endPort = r.integer(p['endPort'], `${field}.endPort`);
  if (port === undefined || port === null) {
    if (endPort !== undefined) r.invalid(`${field}.endPort`, endPort, 'may not be specified when `port` is not specified');
    return { kind: 'allPorts', protocol };
  }
  // IntOrString: a JSON string is always a port name, even "80"; a number is a port number.
  if (typeof port === 'string') {
    const problem = portNameProblem(port);
    if (problem !== null) r.invalid(`${field}.port`, port, `not a valid IANA_SVC_NAME: ${problem}`);
    if (endPort !== undefined) r.invalid(`${field}.endPort`, endPort, 'may not be specified when `port` is non-numeric');
    return { kind: 'named', protocol, name: port };
  }
  if (typeof port !== 'number' || !Number.isInteger(port)) r.fail(`${field}.port`, `must be an integer or a port name, not ${describe(port)}`);
  const portProblem = portNumberProblem(port);
  if (portProblem !== null) r.invalid(`${field}.port`, port, portProblem);
  if (endPort === undefined) return { kind: 'number', protocol, port, endPort: port };
  if (endPort < port || endPort > 65535) r.fail(`${field}.endPort`, `must be an integer from port (${port}) to 65535`);
  return { kind: 'number', protocol, port, endPort };
}

function parseRules(r: Reader, v: unknown, field: string, peersField: 'from' | 'to'): PolicyRule[] {
  return (r.list(v, field) ?? []).map((raw, i) => {
    const f = `${field}[${i}]`;
    const rule = r.record(raw, f);
    const peers = r.list(rule[peersField], `${f}.${peersField}`);
    const ports = r.list(rule['ports'], `${f}.ports`);
    return {
      // An empty list means the same as an absent one: every peer, every port.
      peers: peers === null || peers.length === 0 ? null : peers.map((p, j) => parsePeer(r, p, `${f}.${peersField}[${j}]`)),
      ports: ports === null || ports.length === 0 ? null : ports.map((p, j) => parsePort(r, p, `${f}.ports[${j}]`)),
    };
  });
}

/** The annotation that puts a policy in audit: evaluated and its would-be drops logged, not enforced. */
export const ENFORCEMENT_ANNOTATION = 'netpol-agent.io/enforcement';

export function parseNetworkPolicy(obj: Json): PolicyState {
  const { ref, meta } = metadata('NetworkPolicy', obj, true);
  const r: Reader = new Reader('NetworkPolicy', ref);
  const spec = r.record(obj['spec'], 'spec');
  const ingress = parseRules(r, spec['ingress'], 'spec.ingress', 'from');
  const egress = parseRules(r, spec['egress'], 'spec.egress', 'to');
  const types = r.list(spec['policyTypes'], 'spec.policyTypes');
  let ingressIsolation = true;
  let egressIsolation = egress.length > 0; // the API server's defaulting when policyTypes is absent
  if (types !== null && types.length > 2) r.fail('spec.policyTypes', 'may not specify more than two policyTypes');
  if (types !== null && types.length > 0) {
    for (const [i, t] of types.entries()) {
      if (t !== 'Ingress' && t !== 'Egress') r.fail(`spec.policyTypes[${i}]`, `invalid policy type ${JSON.stringify(t)}: use Ingress or Egress`);
    }
    ingressIsolation = types.includes('Ingress');
    egressIsolation = types.includes('Egress');
  }
  return {
    namespace: ref.namespace,
    name: ref.name,
    podSelector: parseSelector(r, spec['podSelector'], 'spec.podSelector'),
    ingressIsolation,
    egressIsolation,
    ingress: ingressIsolation ? ingress : [],
    egress: egressIsolation ? egress : [],
    ...(enforcementOf(r, meta) === 'audit' ? { enforcement: 'audit' as const } : {}),
  };
}

function enforcementOf(r: Reader, meta: Json): 'audit' | 'enforce' {
  const annotations = meta['annotations'];
  const value = isRecord(annotations) ? annotations[ENFORCEMENT_ANNOTATION] : undefined;
  if (value === undefined || value === 'enforce') return 'enforce';
  if (value === 'audit') return 'audit';
  return r.invalid(`metadata.annotations[${ENFORCEMENT_ANNOTATION}]`, String(value), 'use "audit" (evaluate and log, do not enforce) or "enforce"');
}
