import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';

/**
 * Serving TLS, one way for every kube-correlate listener (the admission webhook, the collector's
 * receivers and the query API): TLS 1.2 or 1.3 only, forward-secret AEAD suites only, an optional
 * client CA that makes a client certificate required, and the files reloaded when they change
 * (polled: Kubernetes Secret and ConfigMap volumes swap a symlink, which directory watches miss).
 */

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';
/** The oldest protocol served by default. TLS 1.0 and 1.1 are never served. */
export const TLS_MIN_VERSION: TlsMinVersion = 'TLSv1.2';
/**
 * Cipher suites offered: the TLS 1.3 suites (all AEAD, all forward-secret), and for TLS 1.2 only
 * ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305 (AEAD). No RSA key
 * exchange, no DHE, no CBC, no SHA-1 MACs. Every client kube-apiserver is built with (Go's
 * crypto/tls), and Node's and OpenSSL's defaults, offer these.
 */
export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Why a TLS handshake was refused (label `reason` of the TLS handshake error counters). */
export type TlsErrorReason =
  | 'protocol_version' | 'no_shared_cipher' | 'no_client_certificate' | 'untrusted_client_certificate' | 'not_tls' | 'timeout' | 'aborted' | 'other';

/** Classifies a `tlsClientError`: the OpenSSL error code, or the verification result Node left on the socket. */
export function tlsErrorReason(err: NodeJS.ErrnoException, socket?: Pick<TLSSocket, 'authorizationError'>): TlsErrorReason {
  // Node verifies the client certificate after the handshake and closes the socket: the error is then
  // a plain ECONNRESET and the verification result is on the socket.
  if (socket?.authorizationError) return 'untrusted_client_certificate';
  switch (err.code) {
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_VERSION_TOO_LOW':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return 'protocol_version';
    case 'ERR_SSL_NO_SHARED_CIPHER':
      return 'no_shared_cipher';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'no_client_certificate';
    case 'ERR_SSL_HTTP_REQUEST':
      return 'not_tls';
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'aborted';
    default:
      return 'other';
  }
}

/** The certificates of a PEM bundle; throws when there is none or one does not parse. */
export function parseCaBundle(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new Error('no PEM certificate in it');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new Error(`certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

/** A certificate's SHA-256 fingerprint and expiry, for logs (empty when it does not parse). */
export function describeCert(cert: Buffer): { fingerprint256?: string; notAfter?: string } {
  try {
    const x = new X509Certificate(cert);
    return { fingerprint256: x.fingerprint256, notAfter: x.validTo };
  } catch {
    return {};
  }
}

/** What a serving context is built from: the serving pair and, for mutual TLS, the client CAs. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/**
 * The secure context's options: the files plus the protocol floor and the suites. Always given
 * whole, also on reload: setSecureContext() builds a new context from what it is given, so a reload
 * without minVersion and ciphers would quietly serve Node's defaults.
 */
export function serverContextOptions(files: TlsFiles, minVersion: TlsMinVersion = TLS_MIN_VERSION): SecureContextOptions {
  return { cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}), minVersion, ciphers: TLS_CIPHERS, honorCipherOrder: true };
}

export type TlsFileErrorCode = 'cert_unreadable' | 'cert_invalid';

/** The serving files could not be loaded; the message is one line naming the setting and the file. */
export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';
  constructor(readonly code: TlsFileErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface ServerTlsOptions {
  /** PEM certificate (chain) file. */
  certFile: string;
  /** PEM private key file. */
  keyFile: string;
  /** PEM bundle of the CAs whose client certificates are accepted: set, a client certificate is required. */
  clientCaFile?: string;
  /** Default TLSv1.2. */
  minVersion?: TlsMinVersion;
  /** How the three settings are named in messages, e.g. `--cert` or `receivers.k8saudit.tls.cert_file`. */
  names?: { cert: string; key: string; clientCa: string };
}

/** What a reload check did: served the new files, kept the previous ones, or found nothing new. */
export type TlsReloadOutcome =
  | { outcome: 'ok'; files: TlsFiles }
  | { outcome: 'error'; error: Error }
  | { outcome: 'unchanged' };

/**
 * The serving TLS of one listener: loads the files (sync, at start, so a missing file fails the
 * start with a message naming it), hands out the options to create a server with, and on `check()`
 * reloads them when their files changed (dev, inode, size, mtime), handing the new whole context
 * options to `apply` (server.setSecureContext). Files that do not load are reported and the
 * previous ones kept. `watch()` runs `check()` on an unref'd timer.
 */
export class ServerTls {
  private readonly names: { cert: string; key: string; clientCa: string };
  private files: TlsFiles | undefined;
  private signature = '';
  private checking = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly opts: ServerTlsOptions) {
    this.names = opts.names ?? { cert: 'cert_file', key: 'key_file', clientCa: 'client_ca_file' };
  }

  /** With a client CA, every connection must present a certificate from it. */
  get requireClientCert(): boolean {
    return this.opts.clientCaFile !== undefined;
  }

  get minVersion(): TlsMinVersion {
    return this.opts.minVersion ?? TLS_MIN_VERSION;
  }

  /** The files last loaded (after `load`). */
  get current(): TlsFiles {
    if (!this.files) throw new Error('ServerTls: load() first');
    return this.files;
  }

  /** Reads and checks the files. Throws TlsFileError naming the setting and the file. */
  load(): TlsFiles {
    const read = (name: string, file: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new TlsFileError('cert_unreadable', `cannot read ${name} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
      }
    };
    const files: TlsFiles = { cert: read(this.names.cert, this.opts.certFile), key: read(this.names.key, this.opts.keyFile) };
    const caFile = this.opts.clientCaFile;
    if (caFile !== undefined) {
      files.ca = read(this.names.clientCa, caFile);
      try {
        parseCaBundle(files.ca);
      } catch (err) {
        throw new TlsFileError('cert_invalid', `${this.names.clientCa} ${caFile} does not load: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      createSecureContext(serverContextOptions(files, this.minVersion));
    } catch (err) {
      throw new TlsFileError('cert_invalid', `${this.names.cert} ${this.opts.certFile} / ${this.names.key} ${this.opts.keyFile} do not load: ${(err as Error).message}`, { cause: err });
    }
    this.files = files;
    this.signature = this.statSignatureSync();
    return files;
  }

  /** Options for https.createServer / http2.createSecureServer: the context, and client certificates required with a client CA. */
  serverOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    return { ...this.contextOptions(), requestCert: this.requireClientCert, rejectUnauthorized: this.requireClientCert };
  }

  /** The whole secure context options of the files last loaded (for setSecureContext). */
  contextOptions(files: TlsFiles = this.current): SecureContextOptions {
    return serverContextOptions(files, this.minVersion);
  }

  /**
   * Reloads the files if they changed since the last load or attempt, and hands the new options to
   * `apply`. Concurrent calls (a slow disk) answer 'unchanged'.
   */
  async check(apply: (options: SecureContextOptions) => void): Promise<TlsReloadOutcome> {
    if (this.checking || !this.files) return { outcome: 'unchanged' };
    this.checking = true;
    try {
      const sig = await this.statSignature();
      if (sig === this.signature) return { outcome: 'unchanged' };
      this.signature = sig;
      const caFile = this.opts.clientCaFile;
      let next: TlsFiles;
      try {
        const [cert, key, ca] = await Promise.all([readFile(this.opts.certFile), readFile(this.opts.keyFile), caFile === undefined ? undefined : readFile(caFile)]);
        next = { cert, key, ...(ca ? { ca } : {}) };
        const prev = this.files;
        if (cert.equals(prev.cert) && key.equals(prev.key) && (ca === undefined || (prev.ca !== undefined && ca.equals(prev.ca)))) return { outcome: 'unchanged' };
        if (ca) parseCaBundle(ca);
        const options = serverContextOptions(next, this.minVersion);
        createSecureContext(options); // throws on unparseable PEM or a key that does not match
        apply(options);
      } catch (err) {
        return { outcome: 'error', error: err as Error };
      }
      this.files = next;
      return { outcome: 'ok', files: next };
    } finally {
      this.checking = false;
    }
  }

  /** Runs `check(apply)` every `intervalMs` (unref'd) and reports what each reload did (not 'unchanged'). */
  watch(intervalMs: number, apply: (options: SecureContextOptions) => void, report: (r: Exclude<TlsReloadOutcome, { outcome: 'unchanged' }>) => void): void {
    this.stop();
    if (!(intervalMs > 0)) return;
    this.timer = setInterval(() => {
      void this.check(apply).then((r) => {
        if (r.outcome !== 'unchanged') report(r);
      });
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private files3(): Array<string | undefined> {
    return [this.opts.certFile, this.opts.keyFile, this.opts.clientCaFile];
  }

  /** dev:ino:size:mtime of the cert, key and client CA files (following symlinks), or the error code of a missing one. */
  private async statSignature(): Promise<string> {
    const one = async (file: string | undefined): Promise<string> => {
      if (file === undefined) return '';
      try {
        const s = await stat(file, { bigint: true });
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
      } catch (err) {
        return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
      }
    };
    return (await Promise.all(this.files3().map(one))).join('|');
  }

  private statSignatureSync(): string {
    // The signature of what was just read: the next check reloads only if a file changed after this.
    return this.files3().map((file) => {
      if (file === undefined) return '';
      try {
        const s = statSync(file, { bigint: true });
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
      } catch (err) {
        return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
      }
    }).join('|');
  }
}
