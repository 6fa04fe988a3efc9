import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** Ids read from a file as the run asks for them, with how far into the file it got (for the progress bar). */
export interface FileIds {
  readonly ids: AsyncIterable<string>;
  /** The file's size in bytes; undefined for stdin. */
  readonly total: number | undefined;
  /** Bytes read so far. */
  bytesRead(): number;
}

/**
 * Streams the ids of a file: one per line, commas and spaces also separate ids, blank lines and lines starting
 * with `#` are skipped. Lines are read as the warm-up asks for ids (readline pauses the file while its queue is
 * full), so a file of millions of ids is never in memory at once. `-` reads stdin.
 */
export function idsFromFile(path: string): FileIds {
  const stdin = path === '-';
  const total = stdin ? undefined : statSync(path).size;
  const input = stdin ? process.stdin : createReadStream(path);
  // readline first: the counter's 'data' listener sets the stream flowing, and no chunk may pass before readline listens.
  const rl = createInterface({ input, crlfDelay: Infinity });
  // The iterator at once too: lines readline emits before it exists would be lost.
  const read = rl[Symbol.asyncIterator]();
  let bytes = 0;
  input.on('data', (chunk: Buffer | string) => {
    bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  });
  async function* lines(): AsyncGenerator<string> {
    try {
      for (let r = await read.next(); r.done !== true; r = await read.next()) {
        const line = r.value;
        const t = line.trim();
        if (t.length === 0 || t.startsWith('#')) continue;
        for (const id of t.split(/[\s,]+/)) if (id.length > 0) yield id;
      }
    } finally {
      rl.close();
      if (!stdin) (input as ReturnType<typeof createReadStream>).destroy();
    }
  }
  return { ids: lines(), total, bytesRead: () => bytes };
}
