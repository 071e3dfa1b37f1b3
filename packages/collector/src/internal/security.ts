import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { ServerTls, TlsFileError, describeCert, tlsErrorReason, type Logger, type PipelineMetrics } from '@kube-correlate/telemetry';
import type { Host } from '../component/component.js';
import { PermanentError } from '../component/errors.js';
import { parseDuration, type ListenerSettings } from '../confmap/schema.js';
import { isServerAuthenticator, type ServerAuthenticator } from '../extensions/bearertokenauth/extension.js';

/**
 * The `tls` and `auth` of one listener (serverSettings in confmap/schema.ts), served alike by every
 * listener: the OTLP/gRPC and OTLP/HTTP receivers, the audit webhook and the query API.
 *
 * - TLS: @kube-correlate/telemetry's ServerTls (TLS 1.2+ or 1.3, forward-secret AEAD suites only,
 *   a client certificate required with `client_ca_file`), the files reloaded every
 *   `reload_interval` when they changed; reloads and refused handshakes are counted
 *   (`kube_correlate_tls_certificate_reloads_total`, `kube_correlate_tls_handshake_errors_total`,
 *   label `listener` = the config path of the listener).
 * - Authentication: the `auth.authenticator` extension (bearertokenauth), looked up when the
 *   listener starts (extensions start first). A request without the token or with a wrong one is
 *   refused with a PermanentError `http: 401`, reason `unauthenticated` (the status table answers
 *   it UNAUTHENTICATED / 401), before its body is read.
 */

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;

/** A client-certificate problem is logged at most once a minute (each is counted). */
const CLIENT_CERT_WARN_INTERVAL_MS = 60_000;

export interface ListenerSecurityOptions {
  /** The config path of the listener's settings, e.g. `receivers.otlp.protocols.grpc`, `extensions.store`: messages and the `listener` label. */
  path: string;
  settings: Pick<ListenerSettings, 'tls' | 'auth'>;
  metrics: PipelineMetrics;
  logger: Logger;
}

/** A refused request: the error to answer (401) and the `WWW-Authenticate` challenge. */
export interface Unauthenticated {
  error: PermanentError;
  challenge: string;
}

export class ListenerSecurity {
  readonly tls: ServerTls | undefined;
  private authenticator: ServerAuthenticator | undefined;
  private lastClientCertWarning = 0;

  constructor(private readonly opts: ListenerSecurityOptions) {
    const t = opts.settings.tls;
    this.tls = t
      ? new ServerTls({
        certFile: t.cert_file, keyFile: t.key_file, ...(t.client_ca_file !== undefined ? { clientCaFile: t.client_ca_file } : {}),
        minVersion: t.min_version === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
        names: { cert: `${opts.path}.tls.cert_file`, key: `${opts.path}.tls.key_file`, clientCa: `${opts.path}.tls.client_ca_file` },
      })
      : undefined;
  }

  get path(): string {
    return this.opts.path;
  }

  /** With `auth`: requests must carry the token. */
  get authenticates(): boolean {
    return this.opts.settings.auth !== undefined;
  }

  /**
   * Loads the TLS files and finds the authenticator among the host's extensions. Throws an Error
   * whose one-line message names the key (`receivers.k8saudit.tls.cert_file: cannot read ...`).
   */
  resolve(host: Pick<Host, 'getExtension'> | undefined): void {
    try {
      this.tls?.load();
    } catch (err) {
      if (err instanceof TlsFileError) throw new Error(err.message, { cause: err });
      throw err;
    }
    const id = this.opts.settings.auth?.authenticator;
    if (id === undefined) return;
    const ext = host?.getExtension(id);
    if (!isServerAuthenticator(ext)) throw new Error(`${this.opts.path}.auth.authenticator: "${id}" is not a running bearertokenauth extension (list it in service.extensions)`);
    this.authenticator = ext;
  }

  /** Options for https.createServer / http2.createSecureServer (after `resolve`). */
  serverOptions(): ReturnType<ServerTls['serverOptions']> {
    if (!this.tls) throw new Error(`${this.opts.path}: no tls`);
    return this.tls.serverOptions();
  }

  /** Reloads the certificate (and client CAs) when their files change; `apply` installs the new context. */
  watch(apply: (options: SecureContextOptions) => void): void {
    const t = this.opts.settings.tls;
    if (!this.tls || !t) return;
    const { metrics, logger, path } = this.opts;
    this.tls.watch(parseDuration(t.reload_interval), apply, (r) => {
      metrics.tlsCertReloads.inc({ listener: path, outcome: r.outcome });
      if (r.outcome === 'ok') logger.info({ listener: path, certFile: t.cert_file, ...describeCert(r.files.cert), clientCaFile: t.client_ca_file }, 'serving certificate reloaded');
      else logger.warn({ listener: path, certFile: t.cert_file, keyFile: t.key_file, clientCaFile: t.client_ca_file, err: r.error.message }, 'new certificate, key or client CA did not load; still serving the previous ones');
    });
  }

  stop(): void {
    this.tls?.stop();
  }

  /** Undefined when the request may go on; otherwise what to refuse it with. */
  check(authorization: string | string[] | undefined): Unauthenticated | undefined {
    if (!this.authenticator) return undefined;
    const value = Array.isArray(authorization) ? authorization[0] : authorization;
    const r = this.authenticator.authenticate(value);
    if (r.ok) return undefined;
    return { error: new PermanentError(r.message, { http: 401, reason: 'unauthenticated' }), challenge: r.challenge };
  }

  /** A refused TLS handshake (an https server's `tlsClientError`): counted, and a client-certificate problem logged once a minute. */
  onTlsClientError(err: NodeJS.ErrnoException, socket: TLSSocket | undefined): void {
    const reason = tlsErrorReason(err, socket);
    this.opts.metrics.tlsHandshakeErrors.inc({ listener: this.opts.path, reason });
    const fields = { listener: this.opts.path, reason, err: err.message, code: err.code, authorizationError: socket?.authorizationError, remoteAddress: socket?.remoteAddress };
    const now = Date.now();
    if ((reason === 'no_client_certificate' || reason === 'untrusted_client_certificate') && now - this.lastClientCertWarning >= CLIENT_CERT_WARN_INTERVAL_MS) {
      this.lastClientCertWarning = now;
      this.opts.logger.warn(fields, 'client certificate refused (further refusals are counted in kube_correlate_tls_handshake_errors_total)');
    } else {
      this.opts.logger.debug(fields, 'TLS handshake failed');
    }
  }

  /** Says so when a listener is reachable from other hosts without TLS: anything not on loopback must use TLS. */
  warnIfExposed(host: string, what: string): void {
    if (this.tls || LOOPBACK.test(host)) return;
    this.opts.logger.warn(
      { listener: this.opts.path, host },
      `${what} listens on ${host} without TLS: anything not on loopback must use TLS (set ${this.opts.path}.tls.cert_file and key_file)${this.authenticates ? '; the bearer token crosses the network in the clear' : ''}`,
    );
  }
}
