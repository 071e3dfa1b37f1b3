/**
 * One error shape for both client libraries, so callers never look inside kafkajs's or
 * @platformatic/kafka's errors: `type` is the Kafka protocol error name when the broker answered
 * one (MESSAGE_TOO_LARGE, SASL_AUTHENTICATION_FAILED, ...), `retriable` says whether trying again
 * later can help, and `cause` keeps the library's own error.
 */
export class KafkaError extends Error {
  override readonly name = 'KafkaError';
  /** The Kafka protocol error name, when the broker answered with one. */
  readonly type: string | undefined;
  readonly retriable: boolean;

  constructor(message: string, opts: { type?: string | undefined; retriable: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.type = opts.type;
    this.retriable = opts.retriable;
  }
}

/** What the client was configured with, for hints in connection errors. */
export interface ConnectionSecurity { tls: boolean; sasl: boolean }

/** Protocol errors that no retry of the same request fixes. */
const PERMANENT = new Set([
  'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE', 'UNSUPPORTED_VERSION', 'INVALID_REQUIRED_ACKS',
  'POLICY_VIOLATION', 'INVALID_CONFIG', 'INVALID_PARTITIONS', 'INVALID_REPLICATION_FACTOR', 'UNSUPPORTED_COMPRESSION_TYPE',
]);

interface Walked { types: string[]; messages: string[]; auth: boolean; tls: boolean }

/** Collects protocol error names and messages from an error tree (`errors`, `cause`), depth-limited. */
function walk(err: unknown, out: Walked, depth = 0): void {
  if (depth > 6 || err === null || typeof err !== 'object') return;
  const e = err as { type?: unknown; apiId?: unknown; message?: unknown; name?: unknown; code?: unknown; errors?: unknown; cause?: unknown };
  // kafkajs: KafkaJSProtocolError.type; @platformatic/kafka: ProtocolError.apiId.
  for (const t of [e.type, e.apiId]) if (typeof t === 'string' && /^[A-Z_]+$/.test(t) && !out.types.includes(t)) out.types.push(t);
  if (typeof e.message === 'string' && e.message && !out.messages.includes(e.message)) out.messages.push(e.message);
  if (e.name === 'KafkaJSSASLAuthenticationError' || e.code === 'PLT_KFK_AUTHENTICATION') out.auth = true;
  if (typeof e.code === 'string' && /^(ERR_TLS_|ERR_SSL_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|CERT_|ERR_OSSL)/.test(e.code)) out.tls = true;
  if (Array.isArray(e.errors)) for (const c of e.errors.slice(0, 8)) walk(c, out, depth + 1);
  walk(e.cause, out, depth + 1);
}

/** The protocol error names in an error tree (either library's errors, or a KafkaError). */
export function kafkaErrorTypes(err: unknown): string[] {
  const out: Walked = { types: [], messages: [], auth: false, tls: false };
  walk(err, out);
  return out.types;
}

/**
 * Wraps any error of either library as a KafkaError whose message says what failed and why, in
 * one line (the libraries nest the reason a few levels down: "produce failed 3 times" <- "Connection
 * to 127.0.0.1:9093 failed" <- "self-signed certificate").
 */
export function toKafkaError(err: unknown, what: string, security?: ConnectionSecurity): KafkaError {
  if (err instanceof KafkaError) return err;
  const out: Walked = { types: [], messages: [], auth: false, tls: false };
  walk(err, out);
  const type = out.types.find((t) => t !== 'NONE');
  const permanent = (type !== undefined && PERMANENT.has(type)) || out.auth || out.tls;
  const reason = out.messages.length ? out.messages.slice(0, 4).join(' <- ') : String(err);
  // A TLS or SASL listener closes the connection of a client that speaks plaintext or skips SASL,
  // without a word: say which setting is the likely cause.
  const closed = !type && out.messages.some((m) => /closed connection|connection closed|ECONNRESET|socket hang up/i.test(m));
  const hint = out.auth || type === 'SASL_AUTHENTICATION_FAILED'
    ? ' (SASL authentication failed: check auth.sasl.username, password and mechanism)'
    : out.tls ? ' (TLS handshake failed: check auth.tls.ca_file, server_name_override, cert_file and key_file, and the broker certificate)'
      : closed && security && !security.tls ? ' (the broker closed the connection without answering, as a TLS listener does to a plaintext client: if it uses TLS, set auth.tls)'
        : closed && security && !security.sasl ? ' (the broker closed the connection without answering, as a SASL listener does to a client without credentials: if it uses SASL, set auth.sasl; a listener that requires client certificates does the same: then set auth.tls.cert_file and key_file)' : '';
  return new KafkaError(`${what}: ${reason}${type ? ` [${type}]` : ''}${hint}`.replace(/\s+/g, ' '), { type, retriable: !permanent, cause: err });
}
