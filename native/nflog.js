'use strict';

// NflogReader: the packets an nfnetlink_log group receives (nft `log group N`),
// read on a native thread and delivered in batches (src/nflog.c).

const binding = require('./build/Release/nftables_napi.node');

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

module.exports = { NflogReader };
