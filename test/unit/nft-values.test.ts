import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ValueError, formatIPv6, parseAddressValue, parseIPv6, parseKeyPart, prefixLength } from '../../src/dataplane/nft/values';
const canonicalKeyPart = (part: string): string => parseKeyPart(part).text;

describe('values', () => {
  it('formats IPv6 like glibc inet_ntop (as nft 1.0.6 prints it)', () => {
    // Each pair was listed by nft 1.0.6 for the input on the left.
    const cases: [string, string][] = [
      ['fd00::0:1', 'fd00::1'],
      ['FD00::2', 'fd00::2'],
      ['::1', '::1'],
      ['::', '::'],
      ['::1.2.3.4', '::1.2.3.4'],
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['2001:db9:0:0:1:0:0:1', '2001:db9::1:0:0:1'],
      ['2001:DB8:0:0:0:0:0:0', '2001:db8::'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ];
    for (const [input, want] of cases) assert.equal(formatIPv6(parseIPv6(input)), want, input);
  });

  it('folds ranges and prefixes the way the kernel lists them', () => {
    const cases: [string, string][] = [
      ['10.0.0.0-10.0.0.255', '10.0.0.0/24'],
      ['10.2.0.0-10.2.0.255', '10.2.0.0/24'],
      ['10.0.0.1/32', '10.0.0.1'],
      ['10.0.0.4-10.0.0.4', '10.0.0.4'],
      ['10.1.0.1-10.1.0.9', '10.1.0.1-10.1.0.9'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['0.0.0.0-255.255.255.255', '0.0.0.0/0'],
      ['fe80::-fe80::ffff', 'fe80::/112'],
      ['::/0', '::/0'],
      ['2001:DB8::/32', '2001:db8::/32'],
      ['fd00::1/128', 'fd00::1'],
    ];
    for (const [input, want] of cases) assert.equal(parseAddressValue(input).text, want, input);
  });

  it('never folds port ranges (nft lists 0-255, 1024-2047 as ranges)', () => {
    assert.equal(parseKeyPart('0-255').text, '0-255');
    assert.equal(parseKeyPart('1024-2047').text, '1024-2047');
    assert.equal(parseKeyPart('4096-4096').text, '4096');
    assert.equal(parseKeyPart(0).text, '0');
    assert.equal(parseKeyPart(65535).text, '65535');
  });

  it('parses key parts by shape', () => {
    assert.deepEqual(parseKeyPart('tcp'), { kind: 'proto', lo: 6n, hi: 6n, text: 'tcp' });
    assert.deepEqual(parseKeyPart('sctp'), { kind: 'proto', lo: 132n, hi: 132n, text: 'sctp' });
    assert.deepEqual(parseKeyPart('80-90'), { kind: 'port', lo: 80n, hi: 90n, text: '80-90' });
    assert.deepEqual(parseKeyPart('10.0.0.0/24'), { kind: 'ipv4', lo: 0x0a000000n, hi: 0x0a0000ffn, text: '10.0.0.0/24' });
    assert.equal(parseKeyPart('::1').kind, 'ipv6');
  });

  it('rejects malformed values with ValueError', () => {
    for (const bad of ['10.0.0.1/24', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.4/', '1.2.3.4/x', '::1::2', '12345::', 'g::1', '10.0.0.1-', '-10.0.0.1', '70000', 'udp6', 'ip']) {
      assert.throws(() => parseKeyPart(bad), ValueError, bad);
    }
  });

  it('computes prefix lengths', () => {
    assert.equal(prefixLength(0n, 255n, 32), 24);
    assert.equal(prefixLength(1n, 256n, 32), -1);
    assert.equal(prefixLength(0n, 2n, 32), -1);
    assert.equal(prefixLength(5n, 5n, 32), 32);
  });

  it('writes an address range that is a prefix as the prefix', () => {
    assert.equal(canonicalKeyPart('10.0.0.0-10.0.0.255'), '10.0.0.0/24');
  });
});
