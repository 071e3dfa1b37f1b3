/**
 * A TCP proxy in front of a Kafka listener that can lose Produce responses: the request reaches
 * the broker (which appends the batch), and the connection is cut before the answer reaches the
 * client, as when a network path fails at the worst moment. The client then retries a produce that
 * was written. With the broker advertising the proxy's port for that listener
 * (`ExtraListener.advertisedPort`), every connection of a client bootstrapped there goes through it.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ResponseDropper {
  port: number;
  /** Loses the answer of the next `n` Produce requests. */
  dropNextProduceResponses(n: number): void;
  /** Answers lost so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

const PRODUCE = 0;

export async function startResponseDropper(port: number, target: () => number): Promise<ResponseDropper> {
  let toDrop = 0;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target() });
    sockets.add(client);
    sockets.add(upstream);
    const doomed = new Set<number>();
    let fromClient = Buffer.alloc(0);
    let fromBroker = Buffer.alloc(0);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (d: Buffer) => {
      fromClient = Buffer.concat([fromClient, d]);
      // Frames: int32 size, then apiKey int16, apiVersion int16, correlationId int32, ...
      while (fromClient.length >= 12 && fromClient.length >= 4 + fromClient.readInt32BE(0)) {
        const size = fromClient.readInt32BE(0);
        if (fromClient.readInt16BE(4) === PRODUCE && toDrop > 0) {
          toDrop--;
          doomed.add(fromClient.readInt32BE(8));
        }
        fromClient = fromClient.subarray(4 + size);
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      fromBroker = Buffer.concat([fromBroker, d]);
      // Whole response frames only (int32 size, correlationId int32, ...), so a doomed one is never half sent.
      while (fromBroker.length >= 8 && fromBroker.length >= 4 + fromBroker.readInt32BE(0)) {
        const size = fromBroker.readInt32BE(0);
        if (doomed.has(fromBroker.readInt32BE(4))) {
          // The broker answered a doomed Produce: cut the connection instead of passing it on.
          dropped++;
          end();
          return;
        }
        client.write(fromBroker.subarray(0, 4 + size));
        fromBroker = fromBroker.subarray(4 + size);
      }
    });
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port,
    dropNextProduceResponses(n) { toDrop += n; },
    get dropped() { return dropped; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
