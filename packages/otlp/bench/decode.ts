/**
 * decodeTraceRequest vs protobufjs on kube-apiserver-shaped ExportTraceServiceRequests.
 *
 *   node packages/otlp/dist/bench/decode.js [--rounds N] [--ms M] [--only ours|protobufjs]
 *
 * Each side decodes the same set of requests (100 spans each). After a warm-up, every round runs
 * each side for about M milliseconds, sides interleaved so machine noise hits both; the median
 * round is reported.
 */
import { decodeTraceRequest, encodeTraceRequest, scanTraceRequest, splitTraceRequest } from '../src/index.js';
import type { KeyValue, Resource, Scope, Span } from '../src/index.js';
import { RequestType, TO_OBJECT, referenceDecode } from '../test/reference-proto.js';

const SPANS_PER_REQUEST = 100;
// Enough distinct requests that per-request values (audit ids, urls, keys) cannot stay cached
// between passes: each pass sees ~20k spans and ~15k distinct strings.
const REQUESTS = 200;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const ROUNDS = arg('--rounds', 11);
const ROUND_MS = arg('--ms', 250);

let seed = 20240601;
function rnd(): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed;
}
const hex = (bytes: number): string => {
  let s = '';
  for (let i = 0; i < bytes; i += 4) s += rnd().toString(16).padStart(8, '0');
  return s.slice(0, bytes * 2);
};
const uuid = (): string => {
  const h = hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const int = (key: string, value: number): KeyValue => ({ key, value: { intValue: String(value) } });

const resource: Resource = {
  attributes: [str('service.name', 'apiserver'), str('host.name', 'kind-control-plane')],
  droppedAttributesCount: 0,
  schemaUrl: '',
};
const scopeHttp: Scope = { name: 'go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp', version: '0.53.0', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };
const scopeApiserver: Scope = { name: 'k8s.io/apiserver', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };

const USER_AGENT = 'kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/d7a8a6f/system:serviceaccount:kube-system:replicaset-controller';

/** One API request's spans, shaped like kube-apiserver 1.34's: server span, handler, storage, etcd. */
function apiRequest(startNs: bigint): Span[] {
  const traceId = hex(16);
  const auditId = uuid();
  const ns = `team-${rnd() % 50}`;
  const name = `web-${hex(4)}`;
  const url = `/api/v1/namespaces/${ns}/pods`;
  const t = (offsetUs: number): string => (startNs + BigInt(offsetUs) * 1000n + BigInt(rnd() % 1000)).toString();
  const base = (spanId: string, parentSpanId: string, nameOf: string, kind: number, scope: Scope, from: number, to: number): Span => ({
    traceId,
    spanId,
    parentSpanId,
    traceState: '',
    flags: 0x101,
    name: nameOf,
    kind,
    startTimeUnixNano: t(from),
    endTimeUnixNano: t(to),
    attributes: [],
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: 0, message: '' },
    resource,
    scope,
  });
  const rootId = hex(8);
  const handlerId = hex(8);
  const storeId = hex(8);
  const root = base(rootId, '', 'POST /api/v1/namespaces/{:namespace}/pods', 2, scopeHttp, 0, 5200);
  root.attributes = [
    str('http.method', 'POST'), str('http.target', url), str('http.scheme', 'https'), str('net.host.name', '172.18.0.2'),
    str('net.sock.peer.addr', '172.18.0.1'), int('net.sock.peer.port', 40000 + (rnd() % 20000)), str('http.flavor', '2'),
    str('user_agent.original', USER_AGENT), int('http.status_code', 201), str('audit-id', auditId),
  ];
  const handler = base(handlerId, rootId, 'Create', 1, scopeApiserver, 40, 5100);
  handler.attributes = [
    str('audit-id', auditId), str('verb', 'create'), str('resource', 'pods'), str('scope', 'namespace'), str('url', url),
    str('user-agent', USER_AGENT), str('client', '172.18.0.2'), str('protocol', 'HTTP/2.0'), str('accept', 'application/vnd.kubernetes.protobuf, */*'),
  ];
  handler.events = [
    'About to convert to expected version', 'Conversion done', 'About to store object in database',
    'Write to database call succeeded', 'About to write a response',
  ].map((e, i) => ({ timeUnixNano: t(100 + i * 900), name: e, attributes: [], droppedAttributesCount: 0 }));
  handler.events[3]!.attributes = [int('len', 2800 + (rnd() % 900))];
  const store = base(storeId, handlerId, 'Create etcd3', 1, scopeApiserver, 2000, 4800);
  store.attributes = [str('audit-id', auditId), str('key', `/registry/pods/${ns}/${name}`), str('type', '*core.Pod'), str('resource', 'pods')];
  const txn = base(hex(8), storeId, 'etcdserverpb.KV/Txn', 3, scopeApiserver, 2100, 4700);
  txn.attributes = [
    str('rpc.system', 'grpc'), str('rpc.service', 'etcdserverpb.KV'), str('rpc.method', 'Txn'), str('net.peer.name', '127.0.0.1'),
    int('net.peer.port', 2379), str('rpc.grpc.status_code', 'OK'), str('key', `/registry/pods/${ns}/${name}`),
  ];
  return [root, handler, store, txn];
}

function buildRequests(): Uint8Array[] {
  const out: Uint8Array[] = [];
  let ns = 1_760_000_000_000_000_000n;
  for (let r = 0; r < REQUESTS; r++) {
    const spans: Span[] = [];
    while (spans.length < SPANS_PER_REQUEST) {
      spans.push(...apiRequest(ns));
      ns += 7_000_000n;
    }
    spans.length = SPANS_PER_REQUEST;
    // A Buffer, as grpc-js and HTTP servers hand it over: protobufjs reads strings natively then.
    const bytes = encodeTraceRequest(spans);
    out.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return out;
}

interface Side {
  name: string;
  run: (bytes: Uint8Array) => number;
}

/** Runs `side` over the requests until `ms` have passed; returns requests decoded per second. */
function timeSide(side: Side, requests: Uint8Array[], ms: number): number {
  let sink = 0;
  let n = 0;
  const start = performance.now();
  let now = start;
  const deadline = start + ms;
  while (now < deadline) {
    for (const bytes of requests) sink += side.run(bytes);
    n += requests.length;
    now = performance.now();
  }
  if (sink < 0) throw new Error('unreachable'); // keeps results alive
  return (n * 1000) / (now - start);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function main(): void {
  const requests = buildRequests();
  const totalBytes = requests.reduce((n, r) => n + r.length, 0);
  const bytesPerRequest = totalBytes / requests.length;
  // Both sides must see the same data, or the comparison means nothing.
  for (const r of requests) {
    const ours = decodeTraceRequest(r).spans;
    if (ours.length !== SPANS_PER_REQUEST || JSON.stringify(ours) !== JSON.stringify(referenceDecode(r))) {
      throw new Error('decoders disagree on the benchmark data');
    }
  }

  const allSides: Side[] = [
    { name: 'decodeTraceRequest', run: (b) => decodeTraceRequest(b).spans.length },
    { name: 'protobufjs decode', run: (b) => (RequestType.decode(b) as unknown as { resource_spans: unknown[] }).resource_spans.length },
    {
      name: 'protobufjs decode+toObject',
      run: (b) => (RequestType.toObject(RequestType.decode(b), TO_OBJECT) as { resource_spans: unknown[] }).resource_spans.length,
    },
    { name: 'protobufjs to our model', run: (b) => referenceDecode(b).length },
    // The Kafka correlator's reader: validates as the decoder does, keeps bytes and the join's fields.
    { name: 'scanTraceRequest (RawSpans)', run: (b) => scanTraceRequest(b).spans.length },
  ];
  // --only narrows the run to one side, e.g. to profile it with --cpu-prof.
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const sides = only === 'ours' ? allSides.slice(0, 1) : only === 'protobufjs' ? allSides.slice(1, 4) : allSides;

  process.stdout.write(
    `node ${process.version}, ${REQUESTS} requests x ${SPANS_PER_REQUEST} spans, ` +
      `${Math.round(bytesPerRequest)} bytes/request (${Math.round(bytesPerRequest / SPANS_PER_REQUEST)} bytes/span), ` +
      `${ROUNDS} rounds x ${ROUND_MS} ms per side, median\n\n`,
  );
  for (const side of sides) timeSide(side, requests, Math.max(300, ROUND_MS)); // warm-up
  const perSide = sides.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    sides.forEach((side, i) => perSide[i]!.push(timeSide(side, requests, ROUND_MS)));
  }
  const medians = perSide.map(median);
  const ours = sides[0] === allSides[0] ? medians[0]! : NaN;
  const rows = sides.map((side, i) => {
    const rps = medians[i]!;
    return `| ${side.name} | ${Math.round(rps * SPANS_PER_REQUEST).toLocaleString('en-US')} | ${((rps * bytesPerRequest) / 1e6).toFixed(1)} | ${side === allSides[0] || Number.isNaN(ours) ? '' : `${(ours / rps).toFixed(2)}x`} |`;
  });
  process.stdout.write(['| decoder | spans/s | MB/s | ours is |', '|---|---:|---:|---:|', ...rows].join('\n') + '\n');
  if (!Number.isNaN(ours)) {
    const target = medians[sides.findIndex((s) => s.name === 'protobufjs decode')]!;
    process.stdout.write(`\nTarget: at least 3x protobufjs decode of the same bytes; measured ${(ours / target).toFixed(2)}x (3x is met against decode+toObject and against decode to our model, not against raw decode).\n`);
  }
  const scanAt = sides.findIndex((s) => s.name.startsWith('scanTraceRequest'));
  const pbAt = sides.findIndex((s) => s.name === 'protobufjs decode');
  if (scanAt >= 0 && pbAt >= 0) process.stdout.write(`scanTraceRequest (what the Kafka correlator reads with): ${(medians[scanAt]! / medians[pbAt]!).toFixed(2)}x protobufjs decode.\n`);
  if (only) return;
  splitBench(requests);
}

/**
 * The collector's Kafka exporter writes one message per trace per request: the received bytes
 * split by trace (splitTraceRequest) against the former path, decoded spans grouped by trace and
 * re-encoded (the decode itself is common to both and not counted).
 */
function splitBench(requests: Uint8Array[]): void {
  const decoded = new Map(requests.map((r) => [r, decodeTraceRequest(r).spans]));
  for (const r of requests) {
    const parts = splitTraceRequest(r);
    const spans = decoded.get(r)!;
    if (parts.length !== new Set(spans.map((s) => s.traceId)).size) throw new Error('split disagrees with the decoder on the trace count');
    for (const p of parts) {
      if (JSON.stringify(decodeTraceRequest(p.request).spans) !== JSON.stringify(spans.filter((s) => s.traceId === p.traceId))) throw new Error('split part decodes to other spans');
    }
  }
  const sides: Side[] = [
    { name: 'splitTraceRequest (bytes as received)', run: (b) => splitTraceRequest(b).length },
    {
      name: 'group decoded spans + encodeTraceRequest per trace',
      run: (b) => {
        const byTrace = new Map<string, Span[]>();
        for (const s of decoded.get(b)!) {
          const list = byTrace.get(s.traceId);
          if (list) list.push(s);
          else byTrace.set(s.traceId, [s]);
        }
        let n = 0;
        for (const list of byTrace.values()) n += encodeTraceRequest(list).length;
        return n;
      },
    },
  ];
  for (const side of sides) timeSide(side, requests, Math.max(300, ROUND_MS));
  const perSide = sides.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) sides.forEach((side, i) => perSide[i]!.push(timeSide(side, requests, ROUND_MS)));
  const medians = perSide.map(median);
  process.stdout.write(`\nPer-trace Kafka messages from one request (the collector's Kafka exporter; ${Math.round(SPANS_PER_REQUEST / (requests.reduce((n, r) => n + splitTraceRequest(r).length, 0) / requests.length))} spans per trace message on average):\n\n`);
  process.stdout.write(['| path | spans/s | ours is |', '|---|---:|---:|', ...sides.map((side, i) => `| ${side.name} | ${Math.round(medians[i]! * SPANS_PER_REQUEST).toLocaleString('en-US')} | ${i ? `${(medians[0]! / medians[i]!).toFixed(2)}x` : ''} |`)].join('\n') + '\n');
}

main();
