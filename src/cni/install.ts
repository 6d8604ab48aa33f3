// Installs netpol-agent-cni on a node, as Calico's and Cilium's chaining installers do: the binary into
// the host's CNI bin directory, and an entry at the end of the plugin chain of the network
// configuration the runtime uses (the first file of the conf directory in name order, as libcni picks
// it). Idempotent: a second run changes nothing and rewrites nothing. Uninstall removes the entry and
// gives back the file as it was found, byte for byte when nothing else changed it meanwhile.
//
// - A .conflist gets the entry appended to "plugins" (after the plugin that assigns addresses, and after
//   portmap and the like, which pass prevResult through).
// - A .conf (one plugin) is turned into a .conflist of the same name holding that plugin and ours; the
//   .conf is kept aside (ORIGINAL_SUFFIX, an extension the runtime ignores) and put back on uninstall.
// - Files are written to a temporary name and renamed: the runtime never reads half a file, and a
//   running plugin binary is replaced, never overwritten.
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { InvalidInputError } from '../errors';
import { isRecord } from '../json';

export const PLUGIN_TYPE = 'netpol-agent-cni';
export const ORIGINAL_SUFFIX = '.netpol-agent-original';
/** The extensions libcni reads from the conf directory. */
const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];
const TMP_SUFFIX = '.netpol-agent-tmp';
/**
 * Left in the conf directory by cni-uninstall (before it removes the entry) and removed by cni-install:
 * the running agent's ConfWatcher does not chain the plugin again meanwhile. libcni reads no dotfile.
 */
export const UNINSTALL_MARKER = '.netpol-agent-cni-uninstalled';

export type FailurePolicy = 'fail-closed' | 'fail-open';

export interface PluginSettings {
  readonly socketPath: string;
  readonly timeoutMs: number;
  readonly failurePolicy: FailurePolicy;
}

export interface InstallOptions extends PluginSettings {
  /** The host's CNI configuration directory (mounted), e.g. /host/etc/cni/net.d. */
  readonly confDir: string;
  /** The host's CNI bin directory (mounted), e.g. /host/opt/cni/bin. */
  readonly binDir: string;
  /** The static plugin binary to copy. */
  readonly pluginBinary: string;
}

export interface InstallReport {
  /** The configuration file that holds the entry. */
  readonly confFile: string;
  readonly confChanged: boolean;
  readonly binaryChanged: boolean;
}

type Json = Record<string, unknown>;

function writeAtomically(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}${TMP_SUFFIX}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** The configuration file the runtime uses: the first of the directory in name order, or null. */
export function activeConfFile(confDir: string): string | null {
  const names = readdirSync(confDir).filter((n) => CONF_EXTENSIONS.includes(extname(n))).sort();
  return names.length === 0 ? null : join(confDir, names[0] ?? '');
}

function readJson(file: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidInputError(file, `not a CNI network configuration (invalid JSON: ${(err as Error).message})`);
  }
  if (!isRecord(parsed)) throw new InvalidInputError(file, 'not a CNI network configuration (not a JSON object)');
  return parsed;
}

/** prevResult (which carries the pod's addresses to a chained plugin) exists from CNI 0.3.0 on. */
function checkVersion(file: string, conf: Json): void {
  const v = conf['cniVersion'];
  if (typeof v !== 'string') throw new InvalidInputError(file, 'has no cniVersion');
  const [major, minor] = v.split('.').map(Number);
  if (major === undefined || minor === undefined || Number.isNaN(major) || Number.isNaN(minor) || (major === 0 && minor < 3)) {
    throw new InvalidInputError(file, `cniVersion ${v} has no prevResult for chained plugins; netpol-agent-cni needs 0.3.0 or later`);
  }
}

/** Our entry of the plugin chain, as cni-install writes it. */
export function pluginEntry(settings: PluginSettings): Json {
  return { type: PLUGIN_TYPE, socketPath: settings.socketPath, timeoutMs: settings.timeoutMs, failurePolicy: settings.failurePolicy };
}

const isOurs = (p: unknown): p is Json => isRecord(p) && p['type'] === PLUGIN_TYPE;

/** The conflist with our entry: appended, or updated in place when there is one already. */
export function withPlugin(conflist: Json, entry: Json): Json {
  const plugins = Array.isArray(conflist['plugins']) ? (conflist['plugins'] as unknown[]) : [];
  const at = plugins.findIndex(isOurs);
  const next = at < 0 ? [...plugins, entry] : plugins.map((p, i) => (i === at ? entry : p)).filter((p, i) => i === at || !isOurs(p));
  return { ...conflist, plugins: next };
}

export function withoutPlugin(conflist: Json): Json {
  const plugins = Array.isArray(conflist['plugins']) ? (conflist['plugins'] as unknown[]) : [];
  return { ...conflist, plugins: plugins.filter((p) => !isOurs(p)) };
}

const format = (conf: Json): string => `${JSON.stringify(conf, null, 2)}\n`;

function sameFile(path: string, data: Buffer): boolean {
  return existsSync(path) && readFileSync(path).equals(data);
}

export function installPlugin(options: InstallOptions): InstallReport {
  const binary = readFileSync(options.pluginBinary);
  const binTarget = join(options.binDir, PLUGIN_TYPE);
  const binaryChanged = !sameFile(binTarget, binary);
  if (binaryChanged) writeAtomically(binTarget, binary, 0o755);
  const chained = chainPlugin(options.confDir, pluginEntry(options));
  rmSync(join(options.confDir, UNINSTALL_MARKER), { force: true });
  return { ...chained, binaryChanged };
}

/** Our entry in the configuration the runtime uses, or null when that holds none. */
export function chainedEntry(confDir: string): Json | null {
  const file = activeConfFile(confDir);
  if (file === null) return null;
  const plugins = readJson(file)['plugins'];
  return Array.isArray(plugins) ? (plugins.find(isOurs) ?? null) : null;
}

/**
 * Puts the entry last in the plugin chain of the configuration the runtime uses (idempotent: a file
 * that holds it already is not rewritten). cni-install runs it once; the agent again whenever the main
 * CNI rewrites its configuration (ConfWatcher).
 */
export function chainPlugin(confDir: string, entry: Json): { readonly confFile: string; readonly confChanged: boolean } {
  const file = activeConfFile(confDir);
  if (file === null) throw new InvalidInputError(confDir, 'holds no CNI network configuration (.conf, .conflist, .json) yet: the main CNI has not written it');
  const conf = readJson(file);
  checkVersion(file, conf);
  if (Array.isArray(conf['plugins'])) {
    const next = format(withPlugin(conf, entry));
    const current = readFileSync(file);
    if (current.toString('utf8') === next) return { confFile: file, confChanged: false };
    // The file as found, kept once (a reinstall over our own entry must not overwrite it).
    if (!(conf['plugins'] as unknown[]).some(isOurs)) copyFileSync(file, `${file}${ORIGINAL_SUFFIX}`);
    writeAtomically(file, next, 0o644);
    return { confFile: file, confChanged: true };
  }
  // One plugin (.conf): a conflist of the same name takes its place, the .conf is kept aside. A conflist
  // there that holds our entry is the one we made of an earlier .conf, which the main CNI wrote again.
  const { cniVersion, name, ...plugin } = conf;
  const conflistFile = join(confDir, `${basename(file, extname(file))}.conflist`);
  if (existsSync(conflistFile) && !((readJson(conflistFile)['plugins'] as unknown[] | undefined) ?? []).some(isOurs)) {
    throw new InvalidInputError(file, `is the configuration in use but ${conflistFile} exists beside it; remove one of them`);
  }
  copyFileSync(file, `${file}${ORIGINAL_SUFFIX}`);
  writeAtomically(conflistFile, format(withPlugin({ cniVersion, name, plugins: [plugin] }, entry)), 0o644);
  rmSync(file);
  return { confFile: conflistFile, confChanged: true };
}

export interface UninstallReport {
  /** Configuration files our entry was removed from (restored or rewritten). */
  readonly confFiles: readonly string[];
  readonly binaryRemoved: boolean;
}

/** Removes our entry from every configuration of the directory, and the binary. */
export function uninstallPlugin(options: { readonly confDir: string; readonly binDir: string }): UninstallReport {
  writeFileSync(join(options.confDir, UNINSTALL_MARKER), 'netpol-agent cni-uninstall ran here; netpol-agent cni-install removes this file\n');
  const confFiles: string[] = [];
  for (const name of readdirSync(options.confDir).sort()) {
    if (!CONF_EXTENSIONS.includes(extname(name))) continue;
    const file = join(options.confDir, name);
    let conf: Json;
    try {
      conf = readJson(file);
    } catch {
      continue; // not ours to judge
    }
    if (!Array.isArray(conf['plugins']) || !(conf['plugins'] as unknown[]).some(isOurs)) continue;
    const rest = withoutPlugin(conf);
    const original = `${file}${ORIGINAL_SUFFIX}`;
    const convertedFrom = join(options.confDir, `${basename(name, extname(name))}.conf${ORIGINAL_SUFFIX}`);
    const plugins = rest['plugins'] as unknown[];
    if (extname(name) === '.conflist' && existsSync(convertedFrom) && !existsSync(original) && plugins.length === 1 && isRecord(plugins[0])) {
      // We turned a .conf into this conflist: the .conf comes back, with any change made to its plugin since.
      const head: Json = { ...rest };
      delete head['plugins'];
      const restored = { ...head, ...plugins[0] };
      const data = isDeepStrictEqual(restored, readJson(convertedFrom)) ? readFileSync(convertedFrom) : format(restored);
      writeAtomically(join(options.confDir, `${basename(name, extname(name))}.conf`), data, 0o644);
      rmSync(convertedFrom);
      rmSync(file);
    } else if (existsSync(original) && isDeepStrictEqual(readJson(original), rest)) {
      // Nothing but our entry changed since install: the original bytes come back.
      writeAtomically(file, readFileSync(original), 0o644);
      rmSync(original);
    } else {
      writeAtomically(file, format(rest), 0o644);
      rmSync(original, { force: true });
    }
    confFiles.push(file);
  }
  const binTarget = join(options.binDir, PLUGIN_TYPE);
  const binaryRemoved = existsSync(binTarget);
  rmSync(binTarget, { force: true });
  return { confFiles, binaryRemoved };
}

/** Waits, polling every second, until the conf directory holds a configuration; false at the deadline. */
export async function waitForConf(confDir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(confDir) && activeConfFile(confDir) !== null) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
  }
}
