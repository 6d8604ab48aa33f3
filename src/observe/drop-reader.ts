// The kernel's drop records, read through nftables-napi's NflogReader (a native thread on the
// nfnetlink_log socket; no tool is run per packet), turned into DropLog entries.
import type { DropContext, DropLog, DropRecord } from './drops';
import { enforcedAllows, explainDrop } from './drops';
import { AUDIT_LOG_PREFIX } from '../dataplane/layout';

export interface DropReader {
  close(): void;
}

interface NflogReaderLike {
  close(): void;
}

type NflogReaderCtor = new (options: { group: number; netns?: string }, onRecords: (records: DropRecord[], lost: number) => void) => NflogReaderLike;

/** Loaded lazily, as the kernel backend loads the addon, so the rest of the agent works without it. */
function nflogReaderClass(): NflogReaderCtor {
  const mod: unknown = require('nftables-napi');
  const ctor = typeof mod === 'object' && mod !== null ? (mod as Record<string, unknown>)['NflogReader'] : undefined;
  if (typeof ctor !== 'function') throw new TypeError('nftables-napi does not export NflogReader');
  return ctor as NflogReaderCtor;
}

export interface DropReaderOptions {
  readonly group: number;
  readonly netns?: string;
  readonly log: DropLog;
  /** The enforced rules. */
  readonly context: DropContext;
  /** The audit table's rules, once it runs (records of its chains carry AUDIT_LOG_PREFIX). */
  readonly audit?: () => DropContext | null;
}

/** Reads nflog group `group` (in `netns`, default the process's) into `log`, each record explained. */
export function startDropReader(options: DropReaderOptions): DropReader {
  const Reader = nflogReaderClass();
  return new Reader({ group: options.group, ...(options.netns === undefined ? {} : { netns: options.netns }) }, (records, lost) => {
    options.log.recordLost(lost);
    for (const rec of records) {
      if (!rec.prefix.startsWith(AUDIT_LOG_PREFIX)) {
        const event = explainDrop(rec, options.context);
        if (event !== null) options.log.record(event);
        continue;
      }
      const audit = options.audit?.() ?? null;
      if (audit === null) continue;
      const event = explainDrop({ ...rec, prefix: rec.prefix.slice(AUDIT_LOG_PREFIX.length) }, audit, 'would drop');
      if (event !== null && enforcedAllows(event, options.context)) options.log.record(event);
    }
  });
}
