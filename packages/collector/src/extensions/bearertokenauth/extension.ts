import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from '@kube-correlate/telemetry';
import type { Component } from '../../component/component.js';
import { TOKEN_CHARS, type BearerTokenAuthConfig } from './config.js';

/** How often a token file is checked for changes (stat; read only when it changed). */
export const TOKEN_FILE_POLL_MS = 1000;

/** What a server-side check says: in, or out with a message and the `WWW-Authenticate` challenge to answer. */
export type AuthOutcome = { ok: true } | { ok: false; message: string; challenge: string };

/** Checks the credentials of a request to a listener (`auth.authenticator` of receivers and the query API). */
export interface ServerAuthenticator {
  /** `authorization` as received (HTTP header, gRPC metadata); undefined when absent. */
  authenticate(authorization: string | undefined): AuthOutcome;
}

/** Adds credentials to what an exporter sends (`auth.authenticator` of the otlp/otlphttp exporters). */
export interface ClientAuthenticator {
  /** The `authorization` value to send now (a token file may have changed since the last call). */
  authorization(): string;
}

export function isServerAuthenticator(c: unknown): c is ServerAuthenticator {
  return typeof (c as Partial<ServerAuthenticator> | undefined)?.authenticate === 'function';
}

export function isClientAuthenticator(c: unknown): c is ClientAuthenticator {
  return typeof (c as Partial<ClientAuthenticator> | undefined)?.authorization === 'function';
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * `extensions.bearertokenauth`: one token, checked on what listeners receive and added to what
 * exporters send, as OpenTelemetry Collector contrib's bearertokenauth extension does.
 *
 * - The token is read when the extension is created (so a listener that starts before it can use
 *   it; a missing or empty file fails the start with a message naming the key), and with
 *   `filename` re-read when the file changes (polled every TOKEN_FILE_POLL_MS: a Kubernetes Secret
 *   volume swaps a symlink); a file that became unreadable or empty keeps the previous token.
 * - A request passes when it carries `authorization: <scheme> <token>` (the scheme's case aside).
 *   The comparison is of SHA-256 digests with crypto.timingSafeEqual: its time depends on neither
 *   the token's content nor its length.
 */
export class BearerTokenAuth implements Component, ServerAuthenticator, ClientAuthenticator {
  private token: string;
  private tokenDigest: Buffer;
  private signature = '';
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly opts: { id: string; config: BearerTokenAuthConfig; logger: Logger; pollMs?: number },
  ) {
    this.token = opts.config.token ?? this.readSync();
    this.tokenDigest = digest(this.token);
  }

  get scheme(): string {
    return this.opts.config.scheme;
  }

  async start(): Promise<void> {
    const file = this.opts.config.filename;
    if (file === undefined || this.timer) return;
    this.signature = await this.statSignature(file);
    this.timer = setInterval(() => void this.checkFile(), this.opts.pollMs ?? TOKEN_FILE_POLL_MS);
    this.timer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  authenticate(authorization: string | undefined): AuthOutcome {
    const realm = `${this.scheme} realm="kube-correlate"`;
    if (authorization === undefined || authorization.trim() === '') {
      return { ok: false, message: `authentication required: send "authorization: ${this.scheme} <token>"`, challenge: realm };
    }
    const value = authorization.trim();
    const prefix = `${this.scheme.toLowerCase()} `;
    const given = value.toLowerCase().startsWith(prefix) ? value.slice(prefix.length).trim() : '';
    // Digests of equal length: the comparison takes the same time whatever was sent.
    if (given !== '' && timingSafeEqual(digest(given), this.tokenDigest)) return { ok: true };
    return { ok: false, message: `invalid credentials: the ${this.scheme} token is missing or wrong`, challenge: `${realm}, error="invalid_token"` };
  }

  authorization(): string {
    return `${this.scheme} ${this.token}`;
  }

  /** Re-reads the token file if it changed. Returns what happened (the poller ignores it; tests use it). */
  async checkFile(): Promise<'ok' | 'error' | 'unchanged'> {
    const file = this.opts.config.filename;
    if (file === undefined || this.checking) return 'unchanged';
    this.checking = true;
    try {
      const sig = await this.statSignature(file);
      if (sig === this.signature) return 'unchanged';
      this.signature = sig;
      let token: string;
      try {
        token = tokenOf(await readFile(file, 'utf8'));
      } catch (err) {
        this.opts.logger.warn({ extension: this.opts.id, filename: file, err: (err as Error).message }, 'token file did not load; still using the previous token');
        return 'error';
      }
      if (token === this.token) return 'unchanged';
      this.token = token;
      this.tokenDigest = digest(token);
      this.opts.logger.info({ extension: this.opts.id, filename: file }, 'bearer token reloaded');
      return 'ok';
    } finally {
      this.checking = false;
    }
  }

  private readSync(): string {
    const file = this.opts.config.filename!;
    try {
      return tokenOf(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`extensions.${this.opts.id}.filename: ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }

  private async statSignature(file: string): Promise<string> {
    try {
      const s = await stat(file, { bigint: true });
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (err) {
      return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
    }
  }
}

/** The token a file holds: its text without surrounding whitespace; one token of visible ASCII. */
function tokenOf(text: string): string {
  const token = text.trim();
  if (token === '') throw new Error('the file is empty');
  if (!TOKEN_CHARS.test(token)) throw new Error('the token holds spaces or non-ASCII characters');
  return token;
}
