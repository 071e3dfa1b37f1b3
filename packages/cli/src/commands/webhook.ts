import { createLogger } from '@kube-correlate/telemetry';
import { DEFAULT_HOST, DEFAULT_PORT, WebhookServer, WebhookStartError } from '@kube-correlate/webhook';
import { CliError, EXIT } from '../errors.js';
import { runUntilSignal } from './until-signal.js';

export interface WebhookOptions {
  cert: string;
  key: string;
  /** PEM bundle of the CAs whose client certificates are required (kube-apiserver's). */
  clientCa?: string;
  port?: number;
  host?: string;
}

/** `--port`: an integer 1–65535. */
export function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CliError(`--port must be an integer 1-65535, got "${v}"`);
  return n;
}

/**
 * `correlate webhook`: serves the mutating admission webhook over HTTPS (TLS 1.2+, forward-secret
 * AEAD suites; with --client-ca, only clients with a certificate from that CA) until SIGINT/SIGTERM,
 * then closes the listener, lets in-flight reviews finish and exits 0. An unreadable or invalid
 * cert/key/client CA and a port in use end it with exit code 2 and a one-line reason.
 */
export async function runWebhook(opts: WebhookOptions): Promise<number> {
  const logger = createLogger({ name: 'webhook' });
  const server = new WebhookServer({
    certFile: opts.cert, keyFile: opts.key, ...(opts.clientCa !== undefined ? { clientCaFile: opts.clientCa } : {}),
    port: opts.port ?? DEFAULT_PORT, host: opts.host ?? DEFAULT_HOST, logger,
  });
  let address: { host: string; port: number };
  try {
    address = await server.start();
  } catch (err) {
    if (err instanceof WebhookStartError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
  return runUntilSignal(logger, {
    stopping: 'shutting down: closing the listener',
    secondSignal: 'second signal: exiting at once',
    shutdown: () => server.close(),
    ready: () => {
      process.stderr.write(
        `kube-correlate admission webhook is running\n` +
          `  mutate   https://${address.host}:${address.port}/mutate\n` +
          `  health   https://${address.host}:${address.port}/healthz\n` +
          `  metrics  https://${address.host}:${address.port}/metrics\n` +
          (opts.clientCa !== undefined ? `  clients  must present a certificate from ${opts.clientCa}\n` : '') +
          `Press Ctrl-C to stop.\n`,
      );
    },
  });
}
