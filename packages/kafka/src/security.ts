import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

/**
 * TLS and SASL for the Kafka connection, in the OpenTelemetry Collector kafka exporter's and
 * receiver's terms (`auth.tls`, `auth.sasl`), turned into what both client libraries take: Node's
 * `tls.connect` options and a SASL mechanism with credentials.
 */
export interface KafkaTlsOptions {
  /** PEM file of the CA(s) that signed the brokers' certificates; default: Node's root CAs. */
  caFile?: string;
  /** PEM client certificate (mutual TLS), with `keyFile`. */
  certFile?: string;
  keyFile?: string;
  /** Accept any broker certificate. For tests only: anyone on the path can read and change the data. */
  insecureSkipVerify?: boolean;
  /** The name the broker certificate must carry (SNI and verification), instead of the broker's host. */
  serverNameOverride?: string;
}

export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

export interface KafkaSaslOptions {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`Kafka TLS: cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Node `tls.connect` options for `tls`; the files are read once, here, so a missing file fails at start. */
export function tlsConnectionOptions(tls: KafkaTlsOptions): ConnectionOptions {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new Error('Kafka TLS: cert_file and key_file go together (a client certificate needs its key)');
  }
  const out: ConnectionOptions = { rejectUnauthorized: !tls.insecureSkipVerify, minVersion: 'TLSv1.2' };
  if (tls.caFile) out.ca = readPem(tls.caFile, 'ca_file');
  if (tls.certFile) out.cert = readPem(tls.certFile, 'cert_file');
  if (tls.keyFile) out.key = readPem(tls.keyFile, 'key_file');
  if (tls.serverNameOverride) out.servername = tls.serverNameOverride;
  return out;
}
