'use strict';

// Public API of nftables-napi: a thin wrapper over the native NativeContext
// (src/addon.c). It validates input, turns native errors into NftError and
// captures the caller's stack before every async hop, so that a rejected
// promise points at the line that called run()/check()/list().

const binding = require('./build/Release/nftables_napi.node');

const MODE_RUN = 0;
const MODE_CHECK = 1;
const MODE_LIST = 2;
const MODE_LIST_TERSE = 3;

const kNftError = Symbol.for('nftables-napi.NftError');

// The longest command text copied into an error's message (the full text is
// in err.command).
const MESSAGE_COMMAND_MAX = 200;

class NftError extends Error {
  constructor(code, message, nftMessage, command, errno) {
    super(message);
    this.name = 'NftError';
    this.code = code;
    this.nftMessage = nftMessage;
    this.command = command;
    if (errno !== undefined) this.errno = errno;
  }

  get [kNftError]() {
    return true;
  }

  // instanceof holds across duplicate copies of this package.
  static [Symbol.hasInstance](value) {
    return value !== null && typeof value === 'object' && value[kNftError] === true;
  }
}

// "<batch>:LINE:COL-COL: Error: MESSAGE" (several-line batches, read from a
// memfd) or "Error: MESSAGE" (one-line batches, read from a buffer).
const ERROR_LINE = /^(?:<batch>:(\d+):[^ ]*: )?Error: (.*)$/;

function batchLines(batch) {
  return batch.split('\n');
}

// The batch's only command, when it has a single non-empty line.
function onlyLine(lines) {
  let found;
  for (const line of lines) {
    if (line.trim() === '') continue;
    if (found !== undefined) return undefined;
    found = line;
  }
  return found;
}

/**
 * Reads nft's error output: the first error's text and the command lines the
 * errors point at (each once, in batch order), or the whole batch if nft
 * named no line.
 */
function parseNftMessage(nftMessage, batch) {
  const out = nftMessage.split('\n');
  let first;
  let lines;
  const picked = new Map();
  for (let i = 0; i < out.length; i++) {
    const m = ERROR_LINE.exec(out[i]);
    if (m === null) continue;
    if (first === undefined) first = m[2];
    if (m[1] !== undefined) {
      lines ??= batchLines(batch);
      const n = Number(m[1]);
      if (n >= 1 && n <= lines.length) picked.set(n, lines[n - 1]);
    } else {
      lines ??= batchLines(batch);
      const only = onlyLine(lines);
      // nft echoes the offending line right under the error line.
      const echoed = only ?? out[i + 1];
      if (echoed !== undefined && echoed !== '') picked.set(0, echoed);
    }
  }
  const command = picked.size > 0
    ? [...picked.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1].trim()).join('\n')
    : batch;
  return { first, command };
}

function shorten(text) {
  const oneLine = text.trim().replace(/\s*\n\s*/g, '; ');
  return oneLine.length > MESSAGE_COMMAND_MAX ? `${oneLine.slice(0, MESSAGE_COMMAND_MAX)}...` : oneLine;
}

/** Makes an NftError out of what the native side threw or rejected with. */
function toNftError(raw, batch) {
  if (raw === null || typeof raw !== 'object' || typeof raw.code !== 'string') return raw;
  const nftMessage = typeof raw.nftMessage === 'string' ? raw.nftMessage.trimEnd() : '';
  const errno = typeof raw.errno === 'number' ? raw.errno : undefined;
  switch (raw.code) {
    case 'NFT_COMMAND_FAILED': {
      const { first, command } = parseNftMessage(nftMessage, batch);
      const what = first ?? (nftMessage === '' ? 'nft command failed' : shorten(nftMessage));
      return new NftError('NFT_COMMAND_FAILED', `nft: ${what}: ${shorten(command)}`, nftMessage, command, errno);
    }
    case 'NFT_CONTEXT_CLOSED':
      return new NftError('NFT_CONTEXT_CLOSED', 'nft context is closed', '', batch, undefined);
    case 'NFT_NETNS':
    case 'NFT_NETLINK':
      return new NftError(raw.code, raw.message, nftMessage, '', errno);
    case 'NFT_INTERNAL':
      return new NftError('NFT_INTERNAL', raw.message, '', batch, undefined);
    default:
      return raw;
  }
}

/** Gives err the stack captured in `site` (the caller's), keeping err's own first line. */
function withStack(err, site) {
  if (err instanceof Error && typeof site.stack === 'string') {
    const at = site.stack.indexOf('\n');
    err.stack = `${err.name}: ${err.message}${at >= 0 ? site.stack.slice(at) : ''}`;
  }
  return err;
}

function checkBatch(batch, what) {
  if (typeof batch !== 'string') {
    return new TypeError(`${what} must be a string, got ${batch === null ? 'null' : typeof batch}`);
  }
  // A NUL would end the C string early and nft would apply only a prefix.
  if (batch.includes('\0')) return new TypeError(`${what} must not contain NUL characters`);
  return undefined;
}

/** The list mode for list()'s options: `{ terse: true }` leaves set and map elements out (nft -t). */
function listMode(options) {
  return options !== undefined && options !== null && options.terse === true ? MODE_LIST_TERSE : MODE_LIST;
}

function parseList(text) {
  return text === undefined ? null : JSON.parse(text);
}

class NftContext {
  #native;

  constructor(options) {
    const netns = options?.netns;
    if (netns !== undefined && netns !== null && typeof netns !== 'string') {
      throw new TypeError('options.netns must be a string (the path of a netns file)');
    }
    if (typeof netns === 'string' && (netns === '' || netns.includes('\0'))) {
      throw new NftError('NFT_NETNS', `invalid network namespace path ${JSON.stringify(netns)}`, '', '', undefined);
    }
    try {
      this.#native = new binding.NativeContext(netns ?? undefined);
    } catch (raw) {
      const err = toNftError(raw, '');
      if (err instanceof Error) Error.captureStackTrace(err, NftContext);
      throw err;
    }
    Object.defineProperty(this, 'netns', { value: netns ?? null, enumerable: true });
  }

  runSync(batch) {
    this.#execSync(MODE_RUN, batch, 'batch', this.runSync);
  }

  listSync(command, options) {
    return parseList(this.#execSync(listMode(options), command, 'command', this.listSync));
  }

  run(batch) {
    const site = {};
    Error.captureStackTrace(site, this.run);
    return this.#exec(MODE_RUN, batch, 'batch', site).then(() => undefined);
  }

  check(batch) {
    const site = {};
    Error.captureStackTrace(site, this.check);
    return this.#exec(MODE_CHECK, batch, 'batch', site).then(() => undefined);
  }

  list(command, options) {
    const site = {};
    Error.captureStackTrace(site, this.list);
    return this.#exec(listMode(options), command, 'command', site).then(parseList);
  }

  close() {
    this.#native.close();
  }

  #execSync(mode, batch, what, caller) {
    const bad = checkBatch(batch, what);
    if (bad !== undefined) {
      Error.captureStackTrace(bad, caller);
      throw bad;
    }
    try {
      return this.#native.execSync(mode, batch);
    } catch (raw) {
      const err = toNftError(raw, batch);
      if (err instanceof Error) Error.captureStackTrace(err, caller);
      throw err;
    }
  }

  #exec(mode, batch, what, site) {
    const bad = checkBatch(batch, what);
    if (bad !== undefined) return Promise.reject(withStack(bad, site));
    return this.#native.exec(mode, batch).catch((raw) => {
      throw withStack(toNftError(raw, batch), site);
    });
  }
}

/** @internal Number of native nft contexts not yet freed (for tests). */
function liveContexts() {
  return binding.liveContexts();
}

/**
 * @internal Makes the next `create` async-work creations and the next `queue`
 * async-work queueings fail as if Node-API had refused them (for tests of
 * those failure paths).
 */
function injectFailures(create, queue) {
  binding.injectFailures(create, queue);
}


// NflogReader: the packets an nfnetlink_log group receives (nft `log group N`), read on a native
// thread and delivered in batches (src/nflog.c).
class NflogReader {
  #native;

  /**
   * @param {{ group: number, netns?: string }} options
   * @param {(records: object[], lost: number) => void} onRecords
   */
  constructor(options, onRecords) {
    const group = options?.group;
    if (!Number.isInteger(group) || group < 0 || group > 65535) throw new TypeError('options.group must be an integer 0..65535');
    const netns = options?.netns;
    if (netns !== undefined && (typeof netns !== 'string' || netns === '' || netns.includes('\0'))) {
      throw new TypeError('options.netns must be the path of a netns file');
    }
    if (typeof onRecords !== 'function') throw new TypeError('onRecords must be a function');
    this.#native = new binding.NflogReader(group, netns, onRecords);
    Object.defineProperty(this, 'group', { value: group, enumerable: true });
  }

  close() {
    this.#native.close();
  }
}

module.exports = { NftContext, NftError, liveContexts, injectFailures, NflogReader };
