import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { PermanentError } from '../component/errors.js';

/**
 * HTTP listeners: one way to create, bind, answer on and close them, for the OTLP/HTTP receiver,
 * the audit webhook, the query API and /metrics. (TLS and authentication are to be added here,
 * from the `serverSettings` of config/schema.ts, so every listener gets them alike.)
 */

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** Splits "host:port" ("[::1]:4317", ":4317" = all interfaces). */
export function splitEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

/** A server for a receiver: a request gets at most a minute (slow clients cannot hold sockets for ever). */
export function receiverServer(handler: RequestListener): Server {
  const server = createServer(handler);
  server.requestTimeout = 60_000;
  return server;
}

/** Listens and resolves with the bound address, or rejects with a message naming the endpoint. */
export function listenHttp(server: Server, endpoint: string, what: string): Promise<string> {
  const { host, port } = splitEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new Error(`${what}: cannot listen on ${endpoint}: ${err.code ?? err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve(`${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}

/** Stops accepting, lets in-flight requests finish (bounded), then closes idle keep-alive sockets. */
export function closeHttp(server: Server, graceMs = 5000): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => server.closeAllConnections(), graceMs);
    t.unref();
    server.close(() => {
      clearTimeout(t);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Writes a whole response. After an early answer (a refusal before the body was read) the rest of
 * the body is not read: the connection is closed rather than reused.
 */
export function answer(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: Buffer | string, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'content-type': contentType, 'content-length': bytes.length, ...headers, ...(req.complete ? {} : { connection: 'close' }) });
  res.end(bytes);
}

/**
 * Reads a request body of at most `maxBytes`, both as sent and after decompression
 * (Content-Encoding gzip, deflate or identity), so a small gzip bomb is refused like a large body.
 * Refusals are PermanentErrors: 413 `too_large`, 415 `unsupported_encoding`, 400 `bad_compression`.
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
    throw new PermanentError(`unsupported Content-Encoding "${encoding}": send gzip, deflate or identity`, { http: 415, reason: 'unsupported_encoding' });
  }
  try {
    return await (encoding === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new PermanentError(`request body is larger than ${maxBytes} bytes after ${encoding} decompression`, { http: 413, reason: 'too_large' });
    }
    throw new PermanentError(`cannot decompress ${encoding} body: ${(err as Error).message}`, { reason: 'bad_compression' });
  }
}

function tooLarge(size: number, max: number): PermanentError {
  return new PermanentError(`request body of ${size} bytes is larger than the limit of ${max} bytes`, { http: 413, reason: 'too_large' });
}
