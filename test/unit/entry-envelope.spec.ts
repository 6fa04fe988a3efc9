import { CacheDecodeError, defaultCodec, jsonCodec } from '../../lib/core/codec';
import { ENTRY_BROTLI, ENTRY_CORRUPT, ENTRY_DEFLATE, ENTRY_GZIP, ENTRY_NEWER, ENTRY_VERSION, decodeEntry, encodeEntry, payloadStart, readHeader, type EntryMeta } from '../../lib/core/entry-envelope';

const T = 1_742_896_553_953; // m8oblvxd in base36

describe('entry envelope', () => {
  describe('round-trips', () => {
    it('payload and createdAt, with a compact text header', () => {
      const raw = encodeEntry('\u0001tc1:{"a":1}', { createdAt: T });
      expect(raw).toBe('\u00021:m8oblvxd|\u0001tc1:{"a":1}');
      expect(decodeEntry(raw)).toEqual({ status: 'current', payload: '\u0001tc1:{"a":1}', meta: { createdAt: T } });
      expect(payloadStart(raw)).toBe(12);
    });

    it('staleAt present and absent', () => {
      const withStale = encodeEntry('x', { createdAt: T, staleAt: T + 60_000 });
      expect(withStale).toBe(`\u00021:${T.toString(36)},${(T + 60_000).toString(36)}|x`);
      expect(decodeEntry(withStale)).toEqual({ status: 'current', payload: 'x', meta: { createdAt: T, staleAt: T + 60_000 } });
      const without = decodeEntry(encodeEntry('x', { createdAt: T }));
      expect(without.meta).toEqual({ createdAt: T });
      expect(without.meta).not.toHaveProperty('staleAt');
      // An empty staleAt field reads as absent; staleAt before createdAt is allowed (stale from the start).
      expect(decodeEntry(`\u00021:${T.toString(36)},|x`).meta).toEqual({ createdAt: T });
      expect(decodeEntry(encodeEntry('x', { createdAt: T, staleAt: 0 })).meta).toEqual({ createdAt: T, staleAt: 0 });
    });

    it('payloads holding the separators, the marker, newlines or nothing at all', () => {
      for (const payload of ['', '|', ',', ':', '|||,,:', 'a|b', '\u00021:abc|def', '\u0002', '\u0001tc1:"a|b,c"', 'line\nbreak\r\n', '€𝄞'.repeat(50)]) {
        const meta: EntryMeta = { createdAt: T, staleAt: T + 1 };
        expect(decodeEntry(encodeEntry(payload, meta))).toEqual({ status: 'current', payload, meta });
      }
    });

    it('codec output of every shape survives the envelope', () => {
      const values = [{ a: [1, 2], s: 'x|y' }, 'plain', 0, -1, null, true, [new Date(5), new Map([[1, 2]])]];
      for (const v of values) {
        const back = decodeEntry(encodeEntry(defaultCodec.encode(v, 'k'), { createdAt: T }));
        expect(defaultCodec.decode(back.payload!)).toEqual(v);
      }
      const json = decodeEntry(encodeEntry(jsonCodec.encode({ a: 'b' }, 'k'), { createdAt: T }));
      expect(jsonCodec.decode(json.payload!)).toEqual({ a: 'b' });
    });

    it('times from 0 to the largest 10-digit base36 number; anything else is refused at encode', () => {
      const max = 36 ** 10 - 1;
      expect(decodeEntry(encodeEntry('p', { createdAt: 0 })).meta).toEqual({ createdAt: 0 });
      expect(decodeEntry(encodeEntry('p', { createdAt: max, staleAt: max })).meta).toEqual({ createdAt: max, staleAt: max });
      for (const bad of [-1, 1.5, NaN, Infinity, 36 ** 10, Number.MAX_SAFE_INTEGER]) {
        expect(() => encodeEntry('p', { createdAt: bad })).toThrow(RangeError);
        expect(() => encodeEntry('p', { createdAt: T, staleAt: bad })).toThrow(RangeError);
      }
    });

    it('flags: 0 is none; the compression flags are known, one at a time; any other flag is refused until defined', () => {
      expect(encodeEntry('p', { createdAt: T, flags: 0 })).toBe(encodeEntry('p', { createdAt: T }));
      expect(decodeEntry(`\u00021:${T.toString(36)},,0|p`)).toEqual({ status: 'current', payload: 'p', meta: { createdAt: T } });
      for (const flags of [ENTRY_GZIP, ENTRY_DEFLATE, ENTRY_BROTLI]) {
        const raw = encodeEntry('p', { createdAt: T, staleAt: T + 1, flags });
        expect(decodeEntry(raw)).toEqual({ status: 'current', payload: 'p', meta: { createdAt: T, staleAt: T + 1, flags } });
        const h = { createdAt: 0, staleAt: -1, flags: 0 };
        expect(readHeader(raw, h)).toBe(raw.length - 1);
        expect(h).toEqual({ createdAt: T, staleAt: T + 1, flags });
      }
      expect(() => encodeEntry('p', { createdAt: T, flags: 8 })).toThrow(RangeError);
      expect(() => encodeEntry('p', { createdAt: T, flags: ENTRY_GZIP | ENTRY_BROTLI })).toThrow(RangeError);
    });

    it('two compression flags at once are corrupt, not newer', () => {
      for (const flags of ['3', '5', '6', '7']) expect(() => decodeEntry(`\u00021:${T.toString(36)},,${flags}|p`)).toThrow(CacheDecodeError);
    });

    it('fields after flags are skipped, so a later version can append some without a version bump', () => {
      expect(decodeEntry(`\u00021:${T.toString(36)},1,,zz,,9|p`)).toEqual({ status: 'current', payload: 'p', meta: { createdAt: T, staleAt: 1 } });
    });
  });

  describe("entries in today's format (before the envelope)", () => {
    it('default-codec payloads pass through as they are', () => {
      const legacy = defaultCodec.encode({ when: new Date(1), n: 1n }, 'k');
      expect(decodeEntry(legacy)).toEqual({ status: 'legacy', payload: legacy, meta: undefined });
      expect(payloadStart(legacy)).toBe(0);
    });

    it('json-codec payloads of every JSON shape pass through as they are', () => {
      for (const v of [{ a: 1 }, [1], 'str', 12, -3, true, false, null]) {
        const legacy = jsonCodec.encode(v, 'k');
        expect(decodeEntry(legacy)).toEqual({ status: 'legacy', payload: legacy, meta: undefined });
      }
    });

    it('anything else not starting with the marker is handed on too (the codec decides if it is corrupt)', () => {
      for (const s of ['', 'garbage{{{', ' \u0002', '\u0003x']) expect(decodeEntry(s)).toMatchObject({ status: 'legacy', payload: s });
    });
  });

  describe('malformed headers are corrupt', () => {
    const c = T.toString(36);
    const cases: Record<string, string> = {
      'the marker alone': '\u0002',
      'no version': '\u0002:abc|p',
      'version 0': '\u00020:abc|p',
      'no colon after the version': `\u00021${c}|p`,
      'an uppercase digit in the version': '\u0002A:abc|p',
      'a version of five digits': '\u000211111:abc|p',
      'no createdAt': '\u00021:|p',
      'no createdAt before a field': '\u00021:,5|p',
      'no terminator': `\u00021:${c}`,
      'no terminator after a field': `\u00021:${c},5`,
      'a truncated header': '\u00021:m8ob',
      'an uppercase digit': '\u00021:M8OBLVXD|p',
      'a negative number': `\u00021:-${c}|p`,
      'a space': `\u00021: ${c}|p`,
      'a createdAt of 11 digits': '\u00021:10000000000|p',
      'a staleAt of 11 digits': `\u00021:${c},10000000000|p`,
      'a digit run as long as the payload': `\u00021:${'1'.repeat(100_000)}|p`,
      'more than 16 fields': `\u00021:${c}${','.repeat(16)}|p`,
      'a payload where the header should end': `\u00021:${c}{"a":1}`,
    };
    for (const [name, raw] of Object.entries(cases)) {
      it(name, () => {
        expect(payloadStart(raw)).toBe(ENTRY_CORRUPT);
        expect(() => decodeEntry(raw)).toThrow(CacheDecodeError);
      });
    }

    it('16 fields is still well-formed', () => {
      expect(decodeEntry(`\u00021:${c}${','.repeat(15)}|p`).status).toBe('current');
    });
  });

  describe('entries this reader cannot read are newer, not corrupt', () => {
    it('a newer version, whatever follows its colon', () => {
      for (const [raw, version] of [
        ['\u00022:m8oblvxd|p', 2],
        ['\u00022:', 2],
        ['\u0002z:anything at all, no bar', 35],
        ['\u0002zzzz:x', 36 ** 4 - 1],
      ] as const) {
        expect(payloadStart(raw)).toBe(ENTRY_NEWER);
        expect(decodeEntry(raw)).toEqual({ status: 'newer', version, payload: undefined, meta: undefined });
      }
      expect(ENTRY_VERSION).toBe(1);
    });

    it('a flag this reader does not know', () => {
      for (const flags of ['8', 'g', '9', 'z', 'zzzzzzzzzz']) {
        const raw = `\u00021:${T.toString(36)},,${flags}|p`;
        expect(payloadStart(raw)).toBe(ENTRY_NEWER);
        expect(decodeEntry(raw)).toEqual({ status: 'newer', version: 1, payload: undefined, meta: undefined });
      }
    });
  });
});
