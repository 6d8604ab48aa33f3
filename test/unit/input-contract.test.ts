// The input contract, one row per case, through the real command line: what the API server rejects,
// probe rejects with exit 2 and the same field path, naming the file and the object, never with a stack
// trace; what it accepts, probe accepts. Objects that look meant for us but are not read give a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { reportFailure } from '../../src/cli/main';
import { DataplaneError } from '../../src/dataplane/dataplane';
import { InvalidInputError } from '../../src/errors';
import { MAX_YAML_BYTES } from '../../src/source/manifests';
import { SandboxError } from '../../src/sandbox/errors';

const CLI = resolve(__dirname, '../../../bin/netpol-agent');

const CONTAINERS = '{nodeName: n1, containers: [{name: c, ports: [{containerPort: 80}]}]}';
const pod = (metadata: string, spec = CONTAINERS, status = '{phase: Running, podIPs: [{ip: 10.0.0.1}]}'): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: ${metadata}\nspec: ${spec}\nstatus: ${status}\n`;
const policy = (spec: string, metadata = '{name: p}', apiVersion = 'networking.k8s.io/v1', kind = 'NetworkPolicy'): string =>
  `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: ${metadata}\nspec: ${spec}\n`;
const ingressPort = (port: string): string => policy(`{podSelector: {}, ingress: [{ports: [${port}]}]}`);
const peer = (p: string): string => policy(`{podSelector: {}, ingress: [{from: [${p}]}]}`);
const namespace = (name: string): string => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}}\n`;

const LABEL = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')";
const SUBDOMAIN = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const QUALIFIED = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')";
const LABEL_VALUE = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345')";
const BOMB = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');

interface Case {
  readonly name: string;
  /** Files to create (relative paths; a value starting with "-> " is a symbolic link to that target). */
  readonly files: Readonly<Record<string, string>>;
  /** probe's arguments; default: -f and every file, in order. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly code: number;
  /** stderr exactly (for usage errors: its first line). */
  readonly stderr: string;
}

const bad = (name: string, file: string, text: string, message: string): Case => ({ name, files: { [file]: text }, code: 2, stderr: `netpol-agent: ${file}: ${message}` });
const accepted = (name: string, text: string): Case => ({ name, files: { 'ok.yaml': text }, code: 0, stderr: '' });
const warned = (name: string, text: string, message: string): Case => ({ name, files: { 'w.yaml': text }, code: 0, stderr: `netpol-agent: warning: w.yaml: ${message}` });
const P0 = 'NetworkPolicy default/p: spec.ingress[0].ports[0]';

const CASES: readonly Case[] = [
  // Exact JSON types: never coerced.
  bad('port true is not port 1', 'p.yaml', ingressPort('{port: true}'), `${P0}.port: must be an integer or a port name, not the boolean true`),
  bad('port [80] is not port 80', 'p.yaml', ingressPort('{port: [80]}'), `${P0}.port: must be an integer or a port name, not a list`),
  bad('port "80" is a port name, and not a valid one', 'p.yaml', ingressPort('{port: "80"}'), `${P0}.port: Invalid value: "80": not a valid IANA_SVC_NAME: must contain at least one letter (a-z)`),
  bad('port 80.5 is not an integer', 'p.yaml', ingressPort('{port: 80.5}'), `${P0}.port: must be an integer or a port name, not the number 80.5`),
  bad('port 0 is out of range', 'p.yaml', ingressPort('{port: 0}'), `${P0}.port: Invalid value: 0: must be between 1 and 65535, inclusive`),
  bad('endPort "90" is not an integer', 'p.yaml', ingressPort('{port: 80, endPort: "90"}'), `${P0}.endPort: must be an integer, not the string "90"`),
  bad('endPort with a named port', 'p.yaml', ingressPort('{port: http, endPort: 90}'), `${P0}.endPort: Invalid value: 90: may not be specified when \`port\` is non-numeric`),
  bad('protocol 6 is not a protocol', 'p.yaml', ingressPort('{port: 80, protocol: 6}'), `${P0}.protocol: unsupported protocol 6: use TCP, UDP or SCTP`),
  bad('cidr 10 is not a string', 'p.yaml', peer('{ipBlock: {cidr: 10}}'), 'NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.cidr: must be a string, not the number 10 (quote it)'),
  bad('cidr is required', 'p.yaml', peer('{ipBlock: {except: [10.0.0.0/24]}}'), 'NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.cidr: Required value'),
  bad('matchLabels is an object', 'p.yaml', policy('{podSelector: {matchLabels: [app]}}'), 'NetworkPolicy default/p: spec.podSelector.matchLabels: must be an object, not a list'),
  bad('matchLabels value false is not "false"', 'p.yaml', policy('{podSelector: {matchLabels: {app: false}}}'), 'NetworkPolicy default/p: spec.podSelector.matchLabels[app]: must be a string, not the boolean false (quote it)'),
  bad('matchExpressions value 1 is not "1"', 'p.yaml', policy('{podSelector: {matchExpressions: [{key: a, operator: In, values: [1]}]}}'), 'NetworkPolicy default/p: spec.podSelector.matchExpressions[0].values[0]: must be a string, not the number 1 (quote it)'),
  bad('at most two policyTypes', 'p.yaml', policy('{podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}'), 'NetworkPolicy default/p: spec.policyTypes: may not specify more than two policyTypes'),
  bad('a policy type is Ingress or Egress', 'p.yaml', policy('{podSelector: {}, policyTypes: [ingress]}'), 'NetworkPolicy default/p: spec.policyTypes[0]: invalid policy type "ingress": use Ingress or Egress'),
  bad('label value true is not "true"', 'a.yaml', pod('{name: a, labels: {access: true}}'), 'Pod default/a: metadata.labels[access]: must be a string, not the boolean true (quote it)'),
  bad('label value 1e3 is not "1e3"', 'a.yaml', pod('{name: a, labels: {v: 1e3}}'), 'Pod default/a: metadata.labels[v]: must be a string, not the number 1000 (quote it)'),
  bad('label value yes (a go-yaml boolean, as kubectl reads it) is not "yes"', 'a.yaml', pod('{name: a, labels: {access: yes}}'), 'Pod default/a: metadata.labels[access]: must be a string, not the boolean true (quote it)'),
  bad('containerPort "80" is not an integer', 'a.yaml', pod('{name: a}', '{containers: [{name: c, ports: [{containerPort: "80"}]}]}'), 'Pod default/a: spec.containers[0].ports[0].containerPort: must be an integer, not the string "80"'),
  bad('containerPort is required', 'a.yaml', pod('{name: a}', '{containers: [{name: c, ports: [{name: http}]}]}'), 'Pod default/a: spec.containers[0].ports[0].containerPort: Required value'),
  bad('container port names are unique', 'a.yaml', pod('{name: a}', '{containers: [{name: c, ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]}]}'), 'Pod default/a: spec.containers[0].ports[1].name: Duplicate value: "http"'),
  bad('podIPs is a list', 'a.yaml', pod('{name: a}', CONTAINERS, '{podIPs: 10.0.0.1}'), 'Pod default/a: status.podIPs: must be a list, not the string "10.0.0.1"'),
  bad('podIPs ip is a string', 'a.yaml', pod('{name: a}', CONTAINERS, '{podIPs: [{ip: 167772161}]}'), 'Pod default/a: status.podIPs[0].ip: must be a string, not the number 167772161 (quote it)'),
  bad('podIPs ip is an address', 'a.yaml', pod('{name: a}', CONTAINERS, '{podIPs: [{ip: 10.0.0.300}]}'), 'Pod default/a: status.podIPs[0].ip: "10.0.0.300" is not an IP address'),
  bad('hostNetwork "true" is not true', 'a.yaml', pod('{name: a}', '{hostNetwork: "true", containers: []}'), 'Pod default/a: spec.hostNetwork: must be true or false, not the string "true"'),
  // Names and labels as the API server validates them; '/' is in no name, so namespace/name keys cannot collide.
  bad('a pod name with a slash (namespace a, pod b/c)', 'a.yaml', pod('{namespace: a, name: b/c}'), `Pod a/b/c: metadata.name: Invalid value: "b/c": ${SUBDOMAIN}`),
  bad('a namespace with a slash (namespace a/b, pod c)', 'a.yaml', pod('{namespace: a/b, name: c}'), `Pod a/b/c: metadata.namespace: Invalid value: "a/b": ${LABEL}`),
  bad('a Namespace name is a DNS-1123 label', 'n.yaml', namespace('Prod'), `Namespace Prod: metadata.name: Invalid value: "Prod": ${LABEL}`),
  bad('a Namespace name has at most 63 characters', 'n.yaml', namespace('a'.repeat(64)), `Namespace ${'a'.repeat(64)}: metadata.name: Invalid value: "${'a'.repeat(64)}": must be no more than 63 characters`),
  bad('a NetworkPolicy name is a DNS-1123 subdomain', 'p.yaml', policy('{podSelector: {}}', '{name: allow_web}'), `NetworkPolicy default/allow_web: metadata.name: Invalid value: "allow_web": ${SUBDOMAIN}`),
  bad('a name is required', 'p.yaml', policy('{podSelector: {}}', '{namespace: x}'), 'NetworkPolicy x/<unnamed>: metadata.name: Required value: name is required'),
  bad('a name is a string', 'a.yaml', pod('{name: 7}'), 'Pod default/<unnamed>: metadata.name: must be a string, not the number 7 (quote it)'),
  bad('a label key has one prefix', 'a.yaml', pod('{name: a, labels: {a/b/c: x}}'), `Pod default/a: metadata.labels: Invalid value: "a/b/c": a qualified name ${QUALIFIED}, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`),
  bad('a label key prefix is a DNS subdomain', 'a.yaml', pod('{name: a, labels: {Example.com/app: x}}'), `Pod default/a: metadata.labels: Invalid value: "Example.com/app": prefix part ${SUBDOMAIN}`),
  bad('a label key name has at most 63 characters', 'a.yaml', pod(`{name: a, labels: {${'k'.repeat(64)}: x}}`), `Pod default/a: metadata.labels: Invalid value: "${'k'.repeat(64)}": name part must be no more than 63 characters`),
  bad('a label value is a label', 'a.yaml', pod('{name: a, labels: {app: "-x"}}'), `Pod default/a: metadata.labels[app]: Invalid value: "-x": ${LABEL_VALUE}`),
  accepted('valid names, prefixed keys, empty label values, named ports', [
    namespace('123-abc'),
    pod('{namespace: 123-abc, name: web.v1, labels: {example.com/app: My_Value.1, empty: ""}}', '{containers: [{name: c, ports: [{name: http, containerPort: 80}, {name: "", containerPort: 81}]}]}'),
    policy('{podSelector: {matchLabels: {example.com/app: My_Value.1}}, ingress: [{ports: [{port: http}, {port: 80, endPort: 90}]}]}', '{namespace: 123-abc, name: allow.web}'),
  ].join('---\n')),
  accepted('a << merge key, as kubectl reads it', pod('{name: a, labels: {<<: {app: web}, tier: db}}')),
  // Each object once in the inputs.
  { name: 'the same pod twice in one file', files: { 'a.yaml': `${pod('{name: web}')}---\n${pod('{name: web}')}` }, code: 2, stderr: 'netpol-agent: a.yaml: document 2: Pod default/web is defined twice (first in a.yaml document 1): keep one of them' },
  { name: 'the same policy in two files', files: { 'a.yaml': policy('{podSelector: {}}'), 'b.yaml': policy('{podSelector: {}}', '{name: p, namespace: default}') }, code: 2, stderr: 'netpol-agent: b.yaml: document 1: NetworkPolicy default/p is defined twice (first in a.yaml document 1): keep one of them' },
  { name: 'the same Namespace twice in a List', files: { 'l.yaml': 'apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Namespace, metadata: {name: x}}, {apiVersion: v1, kind: Namespace, metadata: {name: x}}]\n' }, code: 2, stderr: 'netpol-agent: l.yaml: document 1 item 2: Namespace x is defined twice (first in l.yaml document 1 item 1): keep one of them' },
  { name: 'one file given twice is read once', files: { 'a.yaml': pod('{name: web}') }, args: ['-f', 'a.yaml', '-f', './a.yaml'], code: 0, stderr: '' },
  // Kinds: other people's objects are normal; ones that look like ours are warned about.
  accepted('a Service, a Deployment and a ConfigMap are ignored silently', 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'),
  warned('kind Networkpolicy (case)', policy('{podSelector: {}}', '{name: p}', 'networking.k8s.io/v1', 'Networkpolicy'), 'document 1: kind "Networkpolicy" is not one we read; did you mean NetworkPolicy? The object is ignored'),
  warned('kind NetworkPolcy (one letter)', policy('{podSelector: {}}', '{name: p}', 'networking.k8s.io/v1', 'NetworkPolcy'), 'document 1: kind "NetworkPolcy" is not one we read; did you mean NetworkPolicy? The object is ignored'),
  warned('kind NetwrokPolicy (swapped letters)', policy('{podSelector: {}}', '{name: p}', 'networking.k8s.io/v1', 'NetwrokPolicy'), 'document 1: kind "NetwrokPolicy" is not one we read; did you mean NetworkPolicy? The object is ignored'),
  warned('kind pod', pod('{name: a}').replace('kind: Pod', 'kind: pod'), 'document 1: kind "pod" is not one we read; did you mean Pod? The object is ignored'),
  warned('kind Namespaces', namespace('x').replace('kind: Namespace', 'kind: Namespaces'), 'document 1: kind "Namespaces" is not one we read; did you mean Namespace? The object is ignored'),
  warned('NetworkPolicy extensions/v1beta1', policy('{podSelector: {}}', '{name: p}', 'extensions/v1beta1'), 'document 1: NetworkPolicy with apiVersion "extensions/v1beta1" is ignored: only networking.k8s.io/v1 is read'),
  warned('NetworkPolicy networking.k8s.io/v1beta1', policy('{podSelector: {}}', '{name: p}', 'networking.k8s.io/v1beta1'), 'document 1: NetworkPolicy with apiVersion "networking.k8s.io/v1beta1" is ignored: only networking.k8s.io/v1 is read'),
  // YAML and files.
  bad('a YAML alias bomb', 'bomb.yaml', BOMB, 'document 1 is not valid YAML: Excessive alias count indicates a resource exhaustion attack'),
  bad('an alias without its anchor', 'a.yaml', 'a: *x\n', 'document 1 is not valid YAML: Unresolved alias (the anchor must be set before the alias): x'),
  bad('a key twice in one mapping', 'a.yaml', 'kind: Pod\nmetadata: {name: a}\nkind: Pod\n', 'document 1 is not valid YAML: Map keys must be unique at line 3, column 1:'),
  bad('a key twice in a nested flow mapping', 'a.yaml', pod('{name: a, labels: {app: x, app: y}}'), 'document 1 is not valid YAML: Map keys must be unique at line 3, column 38:'),
  bad('the first of two problems in text order', 'a.yaml', 'a: {b: 1, b: 2}\nc: [\n', 'document 1 is not valid YAML: Map keys must be unique at line 1, column 11:'),
  accepted('the same key in two mappings', `${pod('{name: a, labels: {app: x}}')}---\n${pod('{name: b, labels: {app: x}}').replace('10.0.0.1', '10.0.0.2')}`),
  bad('a YAML file over the size limit', 'big.yaml', `# ${'x'.repeat(MAX_YAML_BYTES)}\n${namespace('a')}`, 'is 1.0 MiB of YAML, more than the 1 MiB read from one YAML file: split it into several files, or write it as JSON'),
  accepted('a JSON file over the YAML size limit', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a', annotations: { pad: 'x'.repeat(MAX_YAML_BYTES) } } })),
  { name: 'a directory with a broken symbolic link', files: { 'dir/a.yaml': pod('{name: a}'), 'dir/b.yaml': '-> missing.yaml' }, args: ['-f', 'dir'], code: 2, stderr: 'netpol-agent: dir/b.yaml: cannot read: broken symbolic link to missing.yaml (no such file or directory)' },
  { name: 'a directory with a link to itself is read once', files: { 'dir/a.yaml': pod('{name: a}'), 'dir/self': '-> .' }, args: ['-f', 'dir'], code: 0, stderr: '' },
  { name: 'a missing file', files: {}, args: ['-f', 'missing.yaml'], code: 2, stderr: 'netpol-agent: missing.yaml: cannot read: no such file or directory' },
  // Usage: exit 2 as documented, not commander's 1.
  { name: 'probe without -f', files: {}, args: [], code: 2, stderr: "error: required option '-f, --file <path>' not specified" },
  { name: 'an unknown option', files: { 'a.yaml': pod('{name: a}') }, args: ['-f', 'a.yaml', '--bogus'], code: 2, stderr: "error: unknown option '--bogus'" },
  { name: 'a bad option value', files: { 'a.yaml': pod('{name: a}') }, args: ['-f', 'a.yaml', '--port', 'abc'], code: 2, stderr: "error: option '--port <n>' argument 'abc' is invalid. a port is an integer from 1 to 65535" },
  { name: 'a bad choice', files: { 'a.yaml': pod('{name: a}') }, args: ['-f', 'a.yaml', '-o', 'xml'], code: 2, stderr: "error: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are table, json." },
  // Sandbox (and dataplane) failures: their message and exit 3; the stack only on request. Two running
  // pods with one address are refused while the sandbox spec is checked, before anything is created.
  { name: 'a sandbox error', files: { 'a.yaml': `${pod('{name: a}')}---\n${pod('{name: b}')}` }, args: ['--dataplane', '-f', 'a.yaml'], code: 3, stderr: 'netpol-agent: pod default/b has address 10.0.0.1, which pod default/a already has; remove default/a first or give default/b another address' },
];

function run(args: readonly string[], cwd: string, env: Readonly<Record<string, string>> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(CLI, ['probe', ...args], { cwd, encoding: 'utf8', env: { ...process.env, NETPOL_AGENT_DEBUG: '', ...env } }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

function writeCase(dir: string, c: Case): void {
  for (const [path, text] of Object.entries(c.files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    if (text.startsWith('-> ')) symlinkSync(text.slice(3), join(dir, path));
    else writeFileSync(join(dir, path), text);
  }
}

test('the input contract, case by case, through the command line', { concurrency: 4 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'netpol-input-'));
  try {
    await Promise.all(CASES.map((c, i) => t.test(c.name, async () => {
      const dir = join(root, String(i));
      mkdirSync(dir);
      writeCase(dir, c);
      const r = await run(c.args ?? Object.keys(c.files).flatMap((f) => ['-f', f]), dir, c.env);
      assert.equal(c.code === 2 && c.stderr.startsWith('error:') ? r.stderr.split('\n')[0] : r.stderr.trimEnd(), c.stderr);
      assert.equal(r.code, c.code, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    })));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('NETPOL_AGENT_DEBUG=1 adds the stack trace to a sandbox error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'netpol-input-'));
  try {
    writeFileSync(join(dir, 'a.yaml'), `${pod('{name: a}')}---\n${pod('{name: b}')}`);
    const r = await run(['--dataplane', '-f', 'a.yaml'], dir, { NETPOL_AGENT_DEBUG: '1' });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^netpol-agent: SandboxError: pod default\/b has address 10\.0\.0\.1.*\n\s+at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('failures of the dataplane and the sandbox: their message and exit 3; input errors exit 2; bugs are rethrown', () => {
  const rows: [Error, number, string][] = [
    [new DataplaneError('node n1: nft transaction failed: table inet netpol-x: Operation not permitted'), 3, 'netpol-agent: node n1: nft transaction failed: table inet netpol-x: Operation not permitted\n'],
    [new SandboxError('namespace np-x already exists'), 3, 'netpol-agent: namespace np-x already exists\n'],
    [new InvalidInputError('a.yaml', 'document 1 has no kind'), 2, 'netpol-agent: a.yaml: document 1 has no kind\n'],
  ];
  for (const [err, code, stderr] of rows) {
    let written = '';
    assert.equal(reportFailure(err, (text) => { written += text; }), code);
    assert.equal(written, stderr);
  }
  const bug = new TypeError('x is undefined');
  assert.throws(() => reportFailure(bug, () => undefined), (e) => e === bug);
});
