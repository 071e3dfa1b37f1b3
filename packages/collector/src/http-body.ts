import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** A request body we refuse, with the HTTP status and the metric reason. */
export class BodyError extends Error {
  override readonly name = 'BodyError';
  constructor(readonly status: 400 | 413 | 415, readonly reason: string, message: string) {
    super(message);
  }
}

/**
 * Reads a request body of at most `maxBytes`, both as sent and after decompression
 * (Content-Encoding gzip, deflate or identity), so a small gzip bomb is refused like a large body.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBytes) throw tooLarge(declared, maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(size, maxBytes);
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks, size);
  const encoding = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new BodyError(415, 'unsupported_encoding', `unsupported Content-Encoding "${encoding}": send gzip, deflate or identity`);
  }
  try {
    return await (encoding === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new BodyError(413, 'too_large', `request body is larger than ${maxBytes} bytes after ${encoding} decompression`);
    }
    throw new BodyError(400, 'bad_compression', `cannot decompress ${encoding} body: ${(err as Error).message}`);
  }
}

function tooLarge(size: number, max: number): BodyError {
  return new BodyError(413, 'too_large', `request body of ${size} bytes is larger than the limit of ${max} bytes`);
}
