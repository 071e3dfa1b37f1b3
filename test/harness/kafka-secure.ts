/**
 * A real Kafka broker with a SASL_SSL listener, for the TLS and SASL tests (issue 14, item 6).
 *
 * Certificates are made with openssl (a throwaway CA, a broker certificate for `kafka.kc.test` and
 * 127.0.0.1, in a PKCS12 keystore for the broker); the listener takes PLAIN (a user in the JAAS
 * config) and SCRAM-SHA-256/512 (credentials written into the KRaft store by `StorageTool format
 * --add-scram`, so they exist before the broker starts). The PLAINTEXT listener stays for the
 * broker itself and the harness's readiness probe; clients under test use `bootstrap`, or
 * `mtlsBootstrap`: an SSL listener that requires a client certificate signed by the same CA.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKafka, type KafkaBroker } from './kafka.js';

export const SECURE_SERVER_NAME = 'kafka.kc.test';

export interface SecureKafka {
  broker: KafkaBroker;
  /** "127.0.0.1:PORT" of the SASL_SSL listener. */
  bootstrap: string;
  /** "127.0.0.1:PORT" of an SSL listener that requires a client certificate signed by the CA (mutual TLS). */
  mtlsBootstrap: string;
  /** PEM client certificate and key signed by the CA. */
  clientCertFile: string;
  clientKeyFile: string;
  /** PEM of the CA that signed the broker certificate. */
  caFile: string;
  /** PEM of a CA that signed nothing the broker has. */
  otherCaFile: string;
  users: {
    plain: { username: string; password: string };
    scram: { username: string; password: string };
  };
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('/usr/bin/openssl', args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`openssl ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}. The TLS tests need OpenSSL at /usr/bin/openssl (Debian/Ubuntu: apt-get install -y openssl).`);
  }
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

export async function startSecureKafka(version: string): Promise<SecureKafka> {
  const certs = mkdtempSync(join(tmpdir(), 'kc-kafka-certs-'));
  try {
    makeCa(certs, 'ca');
    makeCa(certs, 'other-ca');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'broker.key', '-out', 'broker.csr', '-subj', `/CN=${SECURE_SERVER_NAME}`], certs);
    writeFileSync(join(certs, 'broker.ext'), `subjectAltName=DNS:${SECURE_SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`);
    openssl(['x509', '-req', '-in', 'broker.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'broker.pem', '-days', '2', '-extfile', 'broker.ext'], certs);
    openssl(['pkcs12', '-export', '-in', 'broker.pem', '-inkey', 'broker.key', '-certfile', 'ca.pem', '-name', 'broker', '-out', 'broker.p12', '-passout', 'pass:kc-keystore'], certs);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=kube-correlate'], certs);
    writeFileSync(join(certs, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
    openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2', '-extfile', 'client.ext'], certs);
  } catch (e) {
    rmSync(certs, { recursive: true, force: true });
    throw e;
  }
  const users = {
    plain: { username: 'kc-plain', password: 'plain-secret-1' },
    scram: { username: 'kc-scram', password: 'scram-secret-2' },
  };
  const l = 'listener.name.secure';
  const m = 'listener.name.mtls';
  let broker: KafkaBroker;
  try {
    broker = await startKafka({
      version,
      partitions: 4,
      listeners: [{ name: 'SECURE', protocol: 'SASL_SSL' }, { name: 'MTLS', protocol: 'SSL' }],
      formatArgs: ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((m) => ['--add-scram', `${m}=[name=${users.scram.username},password=${users.scram.password}]`]),
      config: {
        [`${l}.ssl.keystore.type`]: 'PKCS12',
        [`${l}.ssl.keystore.location`]: join(certs, 'broker.p12'),
        [`${l}.ssl.keystore.password`]: 'kc-keystore',
        [`${l}.ssl.key.password`]: 'kc-keystore',
        [`${l}.sasl.enabled.mechanisms`]: 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
        [`${l}.plain.sasl.jaas.config`]: `org.apache.kafka.common.security.plain.PlainLoginModule required user_${users.plain.username}="${users.plain.password}";`,
        [`${l}.scram-sha-256.sasl.jaas.config`]: 'org.apache.kafka.common.security.scram.ScramLoginModule required;',
        [`${l}.scram-sha-512.sasl.jaas.config`]: 'org.apache.kafka.common.security.scram.ScramLoginModule required;',
        [`${m}.ssl.keystore.type`]: 'PKCS12',
        [`${m}.ssl.keystore.location`]: join(certs, 'broker.p12'),
        [`${m}.ssl.keystore.password`]: 'kc-keystore',
        [`${m}.ssl.key.password`]: 'kc-keystore',
        [`${m}.ssl.client.auth`]: 'required',
        [`${m}.ssl.truststore.type`]: 'PEM',
        [`${m}.ssl.truststore.location`]: join(certs, 'ca.pem'),
      },
    });
  } catch (e) {
    rmSync(certs, { recursive: true, force: true });
    throw e;
  }
  return {
    broker,
    bootstrap: `127.0.0.1:${broker.listenerPorts['SECURE']}`,
    mtlsBootstrap: `127.0.0.1:${broker.listenerPorts['MTLS']}`,
    clientCertFile: join(certs, 'client.pem'),
    clientKeyFile: join(certs, 'client.key'),
    caFile: join(certs, 'ca.pem'),
    otherCaFile: join(certs, 'other-ca.pem'),
    users,
    async stop() {
      await broker.stop();
      rmSync(certs, { recursive: true, force: true });
    },
  };
}
