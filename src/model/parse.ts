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

type Json = Record<string, unknown>;

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const FINISHED_PHASES = new Set(['Succeeded', 'Failed']);

/** A finished pod has no traffic and its address may already belong to another pod. */
export function hasFinished(pod: PodState): boolean {
  return FINISHED_PHASES.has(pod.phase);
}

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field access with the object's identity at hand for error messages. */
class Reader {
  constructor(readonly kind: string, readonly ref: ObjectRef) {}

  fail(field: string, problem: string): never {
    throw new InvalidObjectError(this.kind, this.ref, field, problem);
  }

  record(v: unknown, field: string): Json {
    if (v === undefined || v === null) return {};
    if (!isRecord(v)) this.fail(field, 'must be an object');
    return v;
  }

  list(v: unknown, field: string): unknown[] | null {
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }

  string(v: unknown, field: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(field, 'must be a string');
    return v;
  }

  labels(v: unknown, field: string): Labels {
    const rec = this.record(v, field);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(rec)) {
      validateLabelKey(this, `${field}[${k}]`, k);
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') this.fail(`${field}[${k}]`, 'label values must be strings');
      validateLabelValue(this, `${field}[${k}]`, String(val));
      out[k] = String(val);
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

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function validateLabelKey(r: Reader, field: string, key: string): void {
  const slash = key.lastIndexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? null : key.slice(0, slash);
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) r.fail(field, `invalid label key ${JSON.stringify(key)}`);
  if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) r.fail(field, `invalid label key prefix ${JSON.stringify(key)}`);
}

function validateLabelValue(r: Reader, field: string, value: string): void {
  if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) r.fail(field, `invalid label value ${JSON.stringify(value)}`);
}

/** IANA_SVC_NAME: 1-15 lowercase letters, digits and single hyphens, at least one letter, no hyphen at either end. */
export function isIanaServiceName(name: string): boolean {
  return name.length >= 1 && name.length <= 15 && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) && /[a-z]/.test(name);
}

function metadata(kind: string, obj: Json, namespaced: boolean): { ref: ObjectRef; meta: Json } {
  const meta = isRecord(obj['metadata']) ? obj['metadata'] : {};
  const name = typeof meta['name'] === 'string' ? meta['name'] : '';
  const namespace = namespaced ? (typeof meta['namespace'] === 'string' && meta['namespace'] !== '' ? meta['namespace'] : 'default') : '';
  const ref = { namespace, name };
  if (name === '') throw new InvalidObjectError(kind, ref.namespace === '' ? { namespace: '', name: '<unnamed>' } : { namespace, name: '<unnamed>' }, 'metadata.name', 'is required');
  return { ref, meta };
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
  const rawIps = podIPs.map((p, i) => r.string(r.record(p, `status.podIPs[${i}]`)['ip'], `status.podIPs[${i}].ip`));
  if (rawIps.length === 0) rawIps.push(r.string(status['podIP'], 'status.podIP'));
  for (const raw of rawIps) {
    if (raw === undefined || raw === '') continue;
    const ip = canonicalIp(raw);
    if (ip === null) r.fail('status.podIPs', `${JSON.stringify(raw)} is not an IP address`);
    if (!ips.includes(ip)) ips.push(ip);
  }
  const ports: ContainerPort[] = [];
  for (const [ci, c] of (r.list(spec['containers'], 'spec.containers') ?? []).entries()) {
    const container = r.record(c, `spec.containers[${ci}]`);
    for (const [pi, p] of (r.list(container['ports'], `spec.containers[${ci}].ports`) ?? []).entries()) {
      const field = `spec.containers[${ci}].ports[${pi}]`;
      const port = r.record(p, field);
      const number = port['containerPort'];
      if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > 65535) r.fail(`${field}.containerPort`, 'must be an integer from 1 to 65535');
      const name = r.string(port['name'], `${field}.name`);
      if (name !== undefined && !isIanaServiceName(name)) r.fail(`${field}.name`, `${JSON.stringify(name)} is not a valid IANA_SVC_NAME (1-15 lowercase letters, digits and hyphens, with a letter)`);
      const protocol = r.protocol(port['protocol'], `${field}.protocol`);
      ports.push(name === undefined ? { port: number, protocol } : { name, port: number, protocol });
    }
  }
  return {
    namespace: ref.namespace,
    name: ref.name,
    uid: r.string(meta['uid'], 'metadata.uid') ?? '',
    labels: r.labels(meta['labels'], 'metadata.labels'),
    nodeName: r.string(spec['nodeName'], 'spec.nodeName') ?? '',
    hostNetwork: spec['hostNetwork'] === true,
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
      if (typeof x !== 'string') r.fail(`${f}.values[${j}]`, 'must be a string');
      validateLabelValue(r, `${f}.values[${j}]`, x);
      return x;
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
    const cidr = cidrText === undefined ? null : parseCidr(cidrText);
    if (cidr === null) r.fail(`${field}.ipBlock.cidr`, `${JSON.stringify(cidrText ?? '')} is not a valid CIDR`);
    const except = (r.list(block['except'], `${field}.ipBlock.except`) ?? []).map((x, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      const text = r.string(x, f) ?? '';
      const e = parseCidr(text);
      if (e === null) r.fail(f, `${JSON.stringify(text)} is not a valid CIDR`);
      if (!cidrContainsCidr(cidr, e) || e.prefix === cidr.prefix) r.fail(f, `${text} must be a strict subset of ${cidrText}`);
      return text;
    });
    return { kind: 'ipBlock', cidr: cidrText as string, except };
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
  const endPort = p['endPort'];
  if (port === undefined || port === null) {
    if (endPort !== undefined && endPort !== null) r.fail(`${field}.endPort`, 'may not be set without a numeric port');
    return { kind: 'allPorts', protocol };
  }
  if (typeof port === 'string' && !/^\d+$/.test(port)) {
    if (!isIanaServiceName(port)) r.fail(`${field}.port`, `${JSON.stringify(port)} is not a valid IANA_SVC_NAME (1-15 lowercase letters, digits and hyphens, with a letter)`);
    if (endPort !== undefined && endPort !== null) r.fail(`${field}.endPort`, 'may not be set with a named port');
    return { kind: 'named', protocol, name: port };
  }
  const number = Number(port);
  if (!Number.isInteger(number) || number < 1 || number > 65535) r.fail(`${field}.port`, 'must be from 1 to 65535 or a port name');
  if (endPort === undefined || endPort === null) return { kind: 'number', protocol, port: number, endPort: number };
  if (typeof endPort !== 'number' || !Number.isInteger(endPort) || endPort < number || endPort > 65535) {
    r.fail(`${field}.endPort`, `must be an integer from port (${number}) to 65535`);
  }
  return { kind: 'number', protocol, port: number, endPort };
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

export function parseNetworkPolicy(obj: Json): PolicyState {
  const { ref } = metadata('NetworkPolicy', obj, true);
  const r: Reader = new Reader('NetworkPolicy', ref);
  const spec = r.record(obj['spec'], 'spec');
  const ingress = parseRules(r, spec['ingress'], 'spec.ingress', 'from');
  const egress = parseRules(r, spec['egress'], 'spec.egress', 'to');
  const types = r.list(spec['policyTypes'], 'spec.policyTypes');
  let ingressIsolation = true;
  let egressIsolation = egress.length > 0; // the API server's defaulting when policyTypes is absent
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
  };
}
