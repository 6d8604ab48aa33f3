// The kernel's drop records, read through nftables-napi's NflogReader (a native thread on the
// nfnetlink_log socket; no tool is run per packet), turned into DropLog entries.
import type { DropContext, DropLog, DropRecord } from './drops';
import { explainDrop } from './drops';

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

/** Reads nflog group `group` (in `netns`, default the process's) into `log`, each record explained in `context`. */
export function startDropReader(options: { readonly group: number; readonly netns?: string; readonly log: DropLog; readonly context: DropContext }): DropReader {
  const Reader = nflogReaderClass();
  return new Reader({ group: options.group, ...(options.netns === undefined ? {} : { netns: options.netns }) }, (records, lost) => {
    options.log.recordLost(lost);
    for (const rec of records) {
      const event = explainDrop(rec, options.context);
      if (event !== null) options.log.record(event);
    }
  });
}
