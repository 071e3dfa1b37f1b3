/**
 * Just enough kubeconfig to fetch a cluster's `/openapi/v2`: the current (or a named) context's
 * server, CA, client certificate and key, bearer token or basic auth. Exec credential plugins and
 * auth providers are refused with that said.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** Where and how to reach one cluster, from a kubeconfig. */
export interface KubeconfigTarget {
  contextName: string;
  clusterName: string;
  userName: string;
  /** `clusters[].cluster.server`, without a trailing slash, e.g. `https://127.0.0.1:6443`. */
  server: string;
  /** PEM of `certificate-authority-data` (base64-decoded) or of the `certificate-authority` file. */
  ca?: string;
  /** PEM of the client certificate (`client-certificate-data` or `client-certificate`). */
  cert?: string;
  /** PEM of the client key (`client-key-data` or `client-key`). */
  key?: string;
  /** `token`, or the content of `tokenFile` (trimmed). */
  token?: string;
  username?: string;
  password?: string;
  insecureSkipTlsVerify: boolean;
  /** `tls-server-name`: the name to verify the server certificate against. */
  tlsServerName?: string;
}

export interface KubeconfigOptions {
  /** Context to use instead of `current-context`. */
  context?: string;
  /** Directory relative file references are resolved against (the kubeconfig's directory). */
  baseDir?: string;
}

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

function rec(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function optString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new KubeconfigError(`${what}: expected a string`);
  return v;
}

/** The `<field>` entry named `name` of a kubeconfig list (clusters, users, contexts). */
function named(doc: Record<string, unknown>, list: string, field: string, name: string): Record<string, unknown> {
  const items = doc[list];
  if (items !== undefined && items !== null && !Array.isArray(items)) throw new KubeconfigError(`${list}: expected a list`);
  for (const it of (items as unknown[] | undefined) ?? []) {
    const r = rec(it);
    if (r?.['name'] === name) {
      const body = rec(r[field]);
      if (body === undefined) throw new KubeconfigError(`${list} entry "${name}" has no ${field}`);
      return body;
    }
  }
  throw new KubeconfigError(`no ${list} entry named "${name}"`);
}

/** Parses kubeconfig YAML and resolves the chosen context (file references read relative to `baseDir`). */
export function parseKubeconfig(text: string, options: KubeconfigOptions = {}): KubeconfigTarget {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new KubeconfigError(`not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  const doc = rec(parsed);
  if (doc === undefined) throw new KubeconfigError('expected a kubeconfig (a YAML mapping)');
  const contextName = options.context ?? optString(doc['current-context'], 'current-context');
  if (contextName === undefined) throw new KubeconfigError('no current-context, and no context given');
  const context = named(doc, 'contexts', 'context', contextName);
  const clusterName = optString(context['cluster'], `context "${contextName}": cluster`);
  if (clusterName === undefined) throw new KubeconfigError(`context "${contextName}" names no cluster`);
  const userName = optString(context['user'], `context "${contextName}": user`) ?? '';
  const cluster = named(doc, 'clusters', 'cluster', clusterName);
  const user = userName === '' ? {} : named(doc, 'users', 'user', userName);
  const baseDir = options.baseDir ?? process.cwd();

  const server = optString(cluster['server'], `cluster "${clusterName}": server`);
  if (server === undefined) throw new KubeconfigError(`cluster "${clusterName}" has no server`);
  if (!/^https?:\/\//.test(server)) throw new KubeconfigError(`cluster "${clusterName}": server ${server} is not an http(s) URL`);

  const pem = (dataKey: string, fileKey: string, owner: Record<string, unknown>, where: string): string | undefined => {
    const data = optString(owner[dataKey], `${where}: ${dataKey}`);
    if (data !== undefined) return Buffer.from(data, 'base64').toString('utf8');
    const file = optString(owner[fileKey], `${where}: ${fileKey}`);
    return file === undefined ? undefined : readRef(file, baseDir, `${where}: ${fileKey}`);
  };
  const cw = `cluster "${clusterName}"`;
  const uw = `user "${userName}"`;
  if (user['exec'] !== undefined && user['exec'] !== null) {
    throw new KubeconfigError(`${uw} uses an exec credential plugin, which is not supported: use a kubeconfig with a token or a client certificate`);
  }
  if (user['auth-provider'] !== undefined && user['auth-provider'] !== null) {
    throw new KubeconfigError(`${uw} uses an auth-provider, which is not supported: use a kubeconfig with a token or a client certificate`);
  }
  let token = optString(user['token'], `${uw}: token`);
  const tokenFile = optString(user['tokenFile'], `${uw}: tokenFile`);
  if (token === undefined && tokenFile !== undefined) token = readRef(tokenFile, baseDir, `${uw}: tokenFile`).trim();
  const insecure = cluster['insecure-skip-tls-verify'];
  const target: KubeconfigTarget = {
    contextName,
    clusterName,
    userName,
    server: server.replace(/\/+$/, ''),
    insecureSkipTlsVerify: insecure === true || insecure === 'true',
  };
  const set = <K extends keyof KubeconfigTarget>(k: K, v: KubeconfigTarget[K] | undefined): void => {
    if (v !== undefined) target[k] = v;
  };
  set('ca', pem('certificate-authority-data', 'certificate-authority', cluster, cw));
  set('tlsServerName', optString(cluster['tls-server-name'], `${cw}: tls-server-name`));
  set('cert', pem('client-certificate-data', 'client-certificate', user, uw));
  set('key', pem('client-key-data', 'client-key', user, uw));
  set('token', token);
  set('username', optString(user['username'], `${uw}: username`));
  set('password', optString(user['password'], `${uw}: password`));
  if ((target.cert === undefined) !== (target.key === undefined)) {
    throw new KubeconfigError(`${uw}: a client certificate needs both a certificate and a key`);
  }
  return target;
}

function readRef(file: string, baseDir: string, what: string): string {
  const p = isAbsolute(file) ? file : resolve(baseDir, file);
  try {
    return readFileSync(p, 'utf8');
  } catch (err) {
    throw new KubeconfigError(`${what}: cannot read ${p}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a kubeconfig file and resolves a context; relative references are relative to the file. */
export function loadKubeconfig(path: string, options: Omit<KubeconfigOptions, 'baseDir'> = {}): KubeconfigTarget {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KubeconfigError(`${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return parseKubeconfig(text, { ...options, baseDir: dirname(resolve(path)) });
  } catch (err) {
    if (err instanceof KubeconfigError) throw new KubeconfigError(`${path}: ${err.message}`, { cause: err });
    throw err;
  }
}

export interface FetchSpecOptions {
  /** Context to use instead of `current-context`. */
  context?: string;
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  /** Path to fetch (default `/openapi/v2`). */
  path?: string;
}

/** GETs JSON from the cluster a kubeconfig target names. */
export function fetchJson(target: KubeconfigTarget, path: string, timeoutMs = 60_000): Promise<unknown> {
  const url = new URL(target.server + path);
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'kube-correlate-apicoverage' };
  if (target.token !== undefined) headers['authorization'] = `Bearer ${target.token}`;
  else if (target.username !== undefined) {
    headers['authorization'] = `Basic ${Buffer.from(`${target.username}:${target.password ?? ''}`).toString('base64')}`;
  }
  return new Promise((resolvePromise, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${url.href}: HTTP ${res.statusCode ?? '?'}: ${body.slice(0, 300)}`));
          return;
        }
        try {
          resolvePromise(JSON.parse(body));
        } catch (err) {
          reject(new Error(`GET ${url.href}: response is not JSON: ${(err as Error).message}`, { cause: err }));
        }
      });
    };
    const req = url.protocol === 'https:'
      ? httpsRequest(url, {
        method: 'GET',
        headers,
        ...(target.ca !== undefined ? { ca: target.ca } : {}),
        ...(target.cert !== undefined ? { cert: target.cert, key: target.key } : {}),
        ...(target.tlsServerName !== undefined ? { servername: target.tlsServerName } : {}),
        rejectUnauthorized: !target.insecureSkipTlsVerify,
      }, onResponse)
      : httpRequest(url, { method: 'GET', headers }, onResponse);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url.href}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Fetches the cluster's OpenAPI v2 document (`/openapi/v2`) with the credentials of a kubeconfig. */
export async function fetchSpec(kubeconfigPath: string, options: FetchSpecOptions = {}): Promise<unknown> {
  const target = loadKubeconfig(kubeconfigPath, options.context === undefined ? {} : { context: options.context });
  return fetchJson(target, options.path ?? '/openapi/v2', options.timeoutMs);
}
