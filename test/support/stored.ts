import { decodeEntry } from '../../lib/core/entry-envelope';

/** What the default codec stores for `v` (the payload inside the entry envelope). */
export const stored = (v: unknown): string => '\u0001tc1:' + JSON.stringify(v);

/** The codec payload of a raw stored value: the entry envelope stripped (a value written without one as it is). */
export const payloadOf = (raw: string | null): string | null | undefined => (raw === null ? null : decodeEntry(raw).payload);
