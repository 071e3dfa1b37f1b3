import { z } from 'zod';

export const BEARERTOKENAUTH_DEFAULTS = {
  scheme: 'Bearer',
} as const;

/** Visible ASCII: what an HTTP header value and gRPC metadata carry unchanged. */
export const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * `extensions.bearertokenauth[/name]`, in OpenTelemetry Collector contrib's keys: `token`, or
 * `filename` (a file holding it, re-read when it changes), and `scheme`.
 */
export const bearerTokenAuthConfig = z.strictObject({
  /** The auth scheme before the token in `authorization: <scheme> <token>`. */
  scheme: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP auth scheme such as "Bearer"').default(BEARERTOKENAUTH_DEFAULTS.scheme),
  /** The token itself (better from the environment: `${env:KC_TOKEN}`). */
  token: z.string().trim().regex(TOKEN_CHARS, 'expected a token of visible ASCII characters (no spaces)').optional(),
  /** A file holding the token (surrounding whitespace ignored), re-read when it changes. */
  filename: z.string().trim().min(1, 'expected a file path').optional(),
}).refine((c) => (c.token === undefined) !== (c.filename === undefined), { message: 'give token or filename (one of them, not both)' });

export type BearerTokenAuthConfig = z.output<typeof bearerTokenAuthConfig>;
