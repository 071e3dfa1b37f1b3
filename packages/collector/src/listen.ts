import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Splits "host:port" ("[::1]:4317", ":4317" = all interfaces). */
export function splitEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

/** Listens and resolves with the bound address, or rejects with a message naming the endpoint. */
export function listenHttp(server: Server, endpoint: string, what: string): Promise<string> {
  const { host, port } = splitEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new Error(`${what}: cannot listen on ${endpoint}: ${err.code ?? err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve(`${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}

/** Stops accepting, lets in-flight requests finish (bounded), then closes idle keep-alive sockets. */
export function closeHttp(server: Server, graceMs = 5000): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => server.closeAllConnections(), graceMs);
    t.unref();
    server.close(() => {
      clearTimeout(t);
      resolve();
    });
    server.closeIdleConnections();
  });
}
