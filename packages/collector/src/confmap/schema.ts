import { z } from 'zod';

/**
 * The building blocks of component configs, one definition each, so that every component reads a
 * duration, an endpoint or a listener's settings alike and says the same when one is wrong.
 */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000 };

/** '250ms', '5s', '1.5m', '1h' -> milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (expected a number with ms, s, m or h, e.g. "5s")`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** A duration as written in the config ("5s"); components convert it with parseDuration. */
export const duration = z.string().refine((s) => DURATION.test(s.trim()), { message: 'expected a duration such as "250ms", "5s" or "1m"' });

/** host:port to listen on ("0.0.0.0:4317", ":4317", "[::1]:4317", port 0 for any). */
export const endpoint = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]*):\d{1,5}$/, 'expected host:port, e.g. "0.0.0.0:4317"');

export const positiveInt = z.number().int().positive();

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/;
const SIZE_UNIT: Record<string, number> = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3, TB: 1e12, TiB: 1024 ** 4 };

/** '512MiB', '10GiB', 1048576 -> bytes. */
export function parseSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = SIZE.exec(v.trim());
  if (!m) throw new Error(`"${v}" is not a size (expected bytes, or a number with KiB, MiB, GiB, KB, MB, GB, e.g. "2GiB")`);
  return Math.floor(Number(m[1]) * SIZE_UNIT[m[2] ?? 'B']!);
}

/** A size as written in the config (bytes, or "2GiB"); components convert it with parseSize. */
export const size = z.union([z.number().int().nonnegative(), z.string().refine((v) => SIZE.test(v.trim()), { message: 'expected a size such as "512MiB" or "10GiB"' })]);

/** `grpc:` with no value enables the part with its defaults, as in the OpenTelemetry Collector. */
export const enabled = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? {} : v), schema).optional();

/** What the `tls` and `auth` of every listener default to. */
export const LISTENER_SECURITY_DEFAULTS = {
  minVersion: '1.2',
  reloadInterval: '10s',
} as const;

/** A file path (certificates, keys, tokens): a non-empty string. */
const path = z.string().trim().min(1, 'expected a file path');

/**
 * `tls` of a listener, in the OpenTelemetry Collector's configtls server terms: the serving pair,
 * `client_ca_file` for mutual TLS (a client certificate from it is then required and verified),
 * `min_version` ("1.2" or "1.3": TLS 1.0 and 1.1 are never served; forward-secret AEAD suites only
 * on TLS 1.2), and `reload_interval`: how often the files are checked for changes and reloaded
 * ("0s": never). Absent: the listener speaks plaintext, for loopback only.
 */
export const tlsServerSettings = z.strictObject({
  cert_file: path,
  key_file: path,
  client_ca_file: path.optional(),
  // YAML reads an unquoted 1.2 as a number; the Collector writes it as a string.
  min_version: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.enum(['1.2', '1.3'], { message: 'expected "1.2" or "1.3" (TLS 1.0 and 1.1 are not served)' }))
    .default(LISTENER_SECURITY_DEFAULTS.minVersion),
  reload_interval: duration.default(LISTENER_SECURITY_DEFAULTS.reloadInterval),
});
export type TlsServerSettings = z.output<typeof tlsServerSettings>;

/**
 * The OpenTelemetry Collector's configtls client settings, shared by the kafka components'
 * `auth.tls` and the otlp/otlphttp exporters' `tls`: the CAs to trust (default: the system's),
 * a client certificate for mutual TLS, the name to verify, and (for tests) no verification.
 */
export const tlsClientFields = {
  ca_file: path.optional(),
  cert_file: path.optional(),
  key_file: path.optional(),
  insecure_skip_verify: z.boolean().default(false),
  server_name_override: z.string().trim().min(1).optional(),
};
/** A refinement for tlsClientFields: a client certificate needs its key. */
export const certWithKey: [(t: { cert_file?: string | undefined; key_file?: string | undefined }) => boolean, { message: string }] = [
  (t) => (t.cert_file === undefined) === (t.key_file === undefined),
  { message: 'cert_file and key_file go together (a client certificate needs its key)' },
];

/** An extension id, `type[/name]`. */
const componentId = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*(\/[^\s/]+)?$/, 'expected an extension id such as "bearertokenauth" or "bearertokenauth/ingest"');

/** `auth` of a listener or an exporter: the extension that checks (or adds) credentials, as in the OpenTelemetry Collector. */
export const authSettings = z.strictObject({ authenticator: componentId });
export type AuthSettings = z.output<typeof authSettings>;

/**
 * What every listener (OTLP/gRPC, OTLP/HTTP, the audit webhook, the query API) is configured with,
 * as the OpenTelemetry Collector's confighttp/configgrpc server settings: `endpoint`, `tls` and
 * `auth` (see internal/security.ts), defined here once so every listener gets them alike.
 */
export const serverSettings = <E extends Record<string, z.ZodType>>(defaultEndpoint: string, extra: E) =>
  z.strictObject({ endpoint: endpoint.default(defaultEndpoint), tls: tlsServerSettings.optional(), auth: authSettings.optional(), ...extra });

/** The listener settings every listener has (for code that serves any of them). */
export interface ListenerSettings {
  endpoint: string;
  tls?: TlsServerSettings | undefined;
  auth?: AuthSettings | undefined;
}
