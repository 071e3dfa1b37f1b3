/**
 * The fuzz targets: each decoder with its seed corpus (the real kube-apiserver recordings in
 * ../shared/data/captures), how a case is generated from a seed, and what must hold for any input:
 *
 * - the decoder returns, or throws its own typed error (OtlpDecodeError, AuditFormatError,
 *   BadReviewError); never a TypeError, RangeError (stack overflow) or anything else;
 * - what it accepts survives what the pipeline does next: JSON.stringify (the store, Kafka), the
 *   protobuf encoder, redaction, the audit summary, the webhook's JSON response;
 * - where there is an encoder, decode(encode(x)) gives x back; splitting a request by trace keeps
 *   every span; validating accepted audit events again changes nothing; the webhook's patch, applied,
 *   asks for no further patch.
 *
 * A violated property throws PropertyError; anything else thrown is a failure as it is.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import {
  AuditFormatError, isAuditEventError, parseAuditLine, parseEventListJson, redactAuditEvent, summarizeAudit, type AuditEvent,
} from '@kube-correlate/audit';
import {
  OtlpDecodeError, attrString, decodeTraceRequest, decodeTraceRequestJson, encodeTraceRequest, encodeTracesJson, scanTraceRequest, spliceTraceRequest, splitTraceRequest,
  type DecodedTraces, type Span,
} from '@kube-correlate/otlp';
import { BadReviewError, mutate, parseAdmissionReviewJson, type JsonPatchOp, type TraceHeaders } from '@kube-correlate/webhook';
import { mutateBytes, mutateJson, mutatePb } from './mutate.js';
import type { Rng } from './rng.js';

export class PropertyError extends Error {
  override readonly name = 'PropertyError';
}

function must(cond: unknown, what: string): asserts cond {
  if (!cond) throw new PropertyError(what);
}

export interface Target {
  name: string;
  /** File extension of saved inputs. */
  ext: 'bin' | 'json' | 'txt';
  /** Loads the seed corpus (once per process). */
  corpus(): Corpus;
  /** The input of case `n`. Deterministic in rng (made from the run's seed and n) and the corpus. */
  generate(rng: Rng, corpus: Corpus, n: number): Uint8Array;
  /** Runs the decoder and checks the properties; returns an outcome label for the statistics. */
  check(input: Uint8Array): string;
}

export interface Corpus {
  seeds: Uint8Array[];
  /** The same, as text (JSON targets). */
  texts: string[];
}

/** ../shared/data beside the repository (from test/dist/fuzz/), or $KC_SHARED_DATA. */
export const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../shared/data/', import.meta.url));

function captures(): string[] {
  const dir = join(DATA_DIR, 'captures');
  if (!existsSync(dir)) throw new Error(`${dir} is missing: the fuzzers seed from the real recordings (set KC_SHARED_DATA to the directory holding captures/)`);
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(dir, d.name)).sort();
}

function otlpRequests(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const dir of captures()) {
    const bin = readFileSync(join(dir, 'otlp.bin'));
    for (let i = 0; i < bin.length;) {
      const n = bin.readUInt32BE(i);
      out.push(bin.subarray(i + 4, i + 4 + n));
      i += 4 + n;
    }
  }
  return out;
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
}

const utf8 = new TextDecoder();

/** Small seeds mutate and check faster: the recorded requests, and each split into its traces. */
function otlpProtobufCorpus(): Corpus {
  const whole = otlpRequests();
  const seeds: Uint8Array[] = [...whole];
  for (const r of whole) for (const t of splitTraceRequest(r)) seeds.push(t.request);
  return { seeds, texts: [] };
}

function otlpJsonCorpus(): Corpus {
  const texts: string[] = [];
  for (const dir of captures()) {
    for (const f of ['otlp.jsonl', 'caller-spans.otlp.jsonl']) {
      for (const l of lines(join(dir, f))) {
        texts.push(l);
        // And small ones: each trace of the request, re-encoded by our encoder.
        const { spans } = decodeTraceRequestJson(JSON.parse(l));
        const byTrace = new Map<string, Span[]>();
        for (const s of spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
        for (const list of byTrace.values()) texts.push(JSON.stringify(encodeTracesJson(list)));
      }
    }
  }
  return { seeds: texts.map((t) => Buffer.from(t)), texts };
}

function auditLines(): string[] {
  return captures().flatMap((dir) => lines(join(dir, 'audit.log')));
}

/** Recorded events made RequestResponse with a Secret in them, so that redaction has work to do. */
function secretLines(all: readonly string[]): string[] {
  const out: string[] = [];
  for (const l of all) {
    const e = JSON.parse(l) as Record<string, unknown> & { objectRef?: { resource?: string; name?: string } };
    if (e.objectRef?.resource !== 'secrets' || e.stage !== 'ResponseComplete') continue;
    const secret = {
      kind: 'Secret', apiVersion: 'v1', metadata: { name: e.objectRef.name ?? 's', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"k":"c2VjcmV0"},"stringData":{"t":"secret"}}\n' } },
      data: { k: 'c2VjcmV0' }, stringData: { t: 'secret' },
    };
    out.push(JSON.stringify({ ...e, level: 'RequestResponse', requestObject: secret, responseObject: { kind: 'SecretList', items: [secret] } }));
    out.push(JSON.stringify({ ...e, verb: 'patch', level: 'Request', requestObject: [{ op: 'add', path: '/data/k', value: 'c2VjcmV0' }, { op: 'replace', path: '', value: secret }] }));
  }
  return out;
}

function auditLineCorpus(): Corpus {
  const all = auditLines();
  const texts = [...all, ...secretLines(all)];
  return { seeds: texts.map((t) => Buffer.from(t)), texts };
}

/** EventList bodies as the webhook backend posts them: runs of consecutive events, items without kind/apiVersion. */
function eventListCorpus(): Corpus {
  const all = auditLines();
  const events = [...all, ...secretLines(all)].map((l) => {
    const { kind: _k, apiVersion: _a, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
  const texts: string[] = [];
  for (let i = 0; i < events.length;) {
    const n = 1 + (i % 17);
    texts.push(JSON.stringify({ kind: 'EventList', apiVersion: i % 5 === 0 ? 'audit.k8s.io/v1beta1' : 'audit.k8s.io/v1', metadata: {}, items: events.slice(i, i + n) }));
    i += n;
  }
  return { seeds: texts.map((t) => Buffer.from(t)), texts };
}

/**
 * AdmissionReviews as kube-apiserver sends them, one per recorded create and update (object = the
 * request body, oldObject = the object as last served), as in packages/webhook's recorded test.
 */
function admissionCorpus(): Corpus {
  const texts: string[] = [];
  for (const dir of captures()) {
    const lastSeen = new Map<string, unknown>();
    for (const l of lines(join(dir, 'audit.log'))) {
      const e = JSON.parse(l) as { stage: string; verb: string; auditID: string; user: unknown; objectRef?: Record<string, string>; requestObject?: Record<string, unknown> & { metadata?: Record<string, unknown> }; responseObject?: Record<string, unknown> & { metadata?: Record<string, unknown> } };
      if (e.stage !== 'ResponseComplete') continue;
      const ref = e.objectRef ?? {};
      const body = e.requestObject;
      if (body?.metadata && ['create', 'update', 'delete', 'patch'].includes(e.verb)) {
        const operation = e.verb === 'create' ? 'CREATE' : e.verb === 'delete' ? 'DELETE' : 'UPDATE';
        const uid = body.metadata.uid as string | undefined;
        texts.push(JSON.stringify({
          apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
          request: {
            uid: e.auditID, kind: { group: ref.apiGroup ?? '', version: ref.apiVersion ?? 'v1', kind: body.kind }, resource: { group: ref.apiGroup ?? '', version: ref.apiVersion, resource: ref.resource },
            subResource: ref.subresource, name: ref.name, namespace: ref.namespace, operation, userInfo: e.user, object: operation === 'DELETE' ? null : body,
            oldObject: operation === 'CREATE' ? null : (uid ? lastSeen.get(uid) ?? null : null), dryRun: false,
          },
        }));
      }
      const seen = e.responseObject;
      if (seen?.metadata && typeof seen.metadata.uid === 'string' && !String(seen.kind).endsWith('List')) lastSeen.set(seen.metadata.uid, seen);
    }
  }
  return { seeds: texts.map((t) => Buffer.from(t)), texts };
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Calls `fn`; an error of the decoder's own class is an outcome, anything else propagates. */
function typed<T>(fn: () => T, cls: new (...args: never[]) => Error): T | Error {
  try {
    return fn();
  } catch (err) {
    if (err instanceof cls) {
      must(typeof err.message === 'string' && err.message.length > 0 && err.message.length < 10_000, `${cls.name} with a message of ${err.message.length} characters`);
      return err;
    }
    throw err;
  }
}

/** Stable text of spans for comparisons (-0 and NaN as JSON cannot carry them are told apart by the deep comparison). */
function sameSpans(a: readonly Span[], b: readonly Span[]): boolean {
  return isDeepStrictEqual(a, b);
}

/** Where two values first differ: a path and both values (cut short). */
function diff(a: unknown, b: unknown, path: string): string | undefined {
  if (isDeepStrictEqual(a, b)) return undefined;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`);
      if (d) return d;
    }
  }
  const show = (v: unknown) => (Object.is(v, -0) ? '-0' : (JSON.stringify(v) ?? String(v)).slice(0, 200));
  return `${path}: ${show(a)} vs ${show(b)}`;
}

function firstDifference(a: readonly Span[], b: readonly Span[]): string {
  if (a.length !== b.length) return `${a.length} spans vs ${b.length}`;
  return diff(a, b, 'spans') ?? 'equal';
}

/** Spans in a canonical order (by their JSON: ids first, and equal ids with different content still sort apart). */
const bySpanKey = (spans: readonly Span[]): Span[] => spans.map((s) => [JSON.stringify(s), s] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, s]) => s);

/**
 * The scanner (the Kafka correlator's reader) against the decoder: it refuses what the decoder
 * refuses with the same message, rejects the same spans for the same reasons, reads the same join
 * fields, and its spans spliced back into one request decode to the decoder's spans (as a set: the
 * splice groups them by resource and scope).
 */
function checkScan(input: Uint8Array, decoded: DecodedTraces | Error): void {
  const scanned = typed(() => scanTraceRequest(input), OtlpDecodeError);
  if (decoded instanceof Error || scanned instanceof Error) {
    must(decoded instanceof Error && scanned instanceof Error, `scanTraceRequest ${scanned instanceof Error ? `refused (${scanned.message})` : 'accepted'} what decodeTraceRequest ${decoded instanceof Error ? `refused (${decoded.message})` : 'accepted'}`);
    must(scanned.message === decoded.message, `scanTraceRequest refused with "${scanned.message}", decodeTraceRequest with "${decoded.message}"`);
    return;
  }
  must(isDeepStrictEqual(scanned.rejected, decoded.rejected), `scan rejected ${JSON.stringify(scanned.rejected).slice(0, 300)}, decode ${JSON.stringify(decoded.rejected).slice(0, 300)}`);
  must(scanned.spans.length === decoded.spans.length, `scan: ${scanned.spans.length} spans, decode: ${decoded.spans.length}`);
  scanned.spans.forEach((r, i) => {
    const s = decoded.spans[i]!;
    const got = [r.traceId, r.spanId, r.parentSpanId, r.name, r.kind, r.auditId, r.attributeCount, r.eventCount, r.linkCount, r.scope.name];
    const want = [s.traceId, s.spanId, s.parentSpanId, s.name, s.kind, attrString(s.attributes, 'audit-id'), s.attributes.length, s.events.length, s.links.length, s.scope.name];
    must(isDeepStrictEqual(got, want), `scanned span ${i}: ${JSON.stringify(got)}, decoded: ${JSON.stringify(want)}`);
  });
  const spliced = decodeTraceRequest(spliceTraceRequest(scanned.spans));
  must(spliced.rejected.length === 0, `spliced spans rejected: ${spliced.rejected[0]?.reason}`);
  const [a, b] = [bySpanKey(spliced.spans), bySpanKey(decoded.spans)];
  must(sameSpans(a, b), `spliced: ${firstDifference(a, b)}`);
}

/** What every accepted span must survive: the store's JSON, and our own encoders and decoders. */
function checkSpans(decoded: DecodedTraces, via: string): void {
  for (const s of decoded.spans) must(typeof JSON.stringify(s) === 'string', 'JSON.stringify of a span');
  const again = decodeTraceRequest(encodeTraceRequest(decoded.spans));
  must(again.rejected.length === 0, `${via}: decode(encode(spans)) rejected ${again.rejected.map((r) => r.reason).join('; ')}`);
  must(sameSpans(again.spans, decoded.spans), `${via}: protobuf decode(encode(spans)) differs: ${firstDifference(again.spans, decoded.spans)}`);
  const json = decodeTraceRequestJson(encodeTracesJson(decoded.spans));
  must(json.rejected.length === 0, `${via}: JSON decode(encode(spans)) rejected ${json.rejected.map((r) => r.reason).join('; ')}`);
  must(sameSpans(json.spans, decoded.spans), `${via}: JSON decode(encode(spans)) differs: ${firstDifference(json.spans, decoded.spans)}`);
}

function outcome(d: DecodedTraces): string {
  return d.rejected.length === 0 ? 'accepted' : d.spans.length === 0 ? 'all rejected' : 'partial';
}

const otlpProtobuf: Target = {
  name: 'otlp-protobuf',
  ext: 'bin',
  corpus: otlpProtobufCorpus,
  generate(rng, corpus) {
    const seed = rng.pick(corpus.seeds);
    const r = rng.float();
    if (r < 0.6) return mutatePb(rng, seed, corpus.seeds);
    if (r < 0.9) return mutateBytes(rng, seed, corpus.seeds);
    return mutateBytes(rng, mutatePb(rng, seed, corpus.seeds), corpus.seeds);
  },
  check(input) {
    const decoded = typed(() => decodeTraceRequest(input), OtlpDecodeError);
    const parts = typed(() => splitTraceRequest(input), OtlpDecodeError);
    checkScan(input, decoded);
    if (decoded instanceof Error) return 'refused';
    // What decodes also splits, and the parts hold exactly the spans (and rejections) of each trace.
    must(!(parts instanceof Error), `decodeTraceRequest accepted what splitTraceRequest refused: ${(parts as Error).message}`);
    let spans = 0;
    let rejected = 0;
    for (const p of parts) {
      const d = decodeTraceRequest(p.request);
      spans += d.spans.length;
      rejected += d.rejected.length;
      const want = decoded.spans.filter((s) => s.traceId === p.traceId);
      must(sameSpans(d.spans, want), `split part ${p.traceId}: ${firstDifference(d.spans, want)}`);
    }
    must(spans === decoded.spans.length && rejected === decoded.rejected.length, `split: ${spans} spans and ${rejected} rejected, decode: ${decoded.spans.length} and ${decoded.rejected.length}`);
    checkSpans(decoded, 'protobuf');
    return outcome(decoded);
  },
};

const otlpJson: Target = {
  name: 'otlp-json',
  ext: 'json',
  corpus: otlpJsonCorpus,
  generate(rng, corpus) {
    const i = rng.int(corpus.texts.length);
    return mutateJson(rng, corpus.texts[i]!, corpus.texts);
  },
  check(input) {
    // As the OTLP/HTTP receiver reads a body: UTF-8 (invalid bytes become U+FFFD), then JSON.parse.
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(input).toString('utf8'));
    } catch (err) {
      if (err instanceof SyntaxError) return 'not JSON';
      throw err;
    }
    const decoded = typed(() => decodeTraceRequestJson(body), OtlpDecodeError);
    if (decoded instanceof Error) return 'refused';
    checkSpans(decoded, 'JSON');
    return outcome(decoded);
  },
};

/** What every accepted audit event must survive: the store's and Kafka's JSON, redaction, the summary, validation again. */
function checkEvents(events: readonly AuditEvent[]): void {
  for (const e of events) {
    const text = JSON.stringify(e);
    must(typeof text === 'string', 'JSON.stringify of an event');
    const { event, redactions } = redactAuditEvent(e);
    must(redactions.length === 0 ? event === e : event !== e, 'redaction: a copy exactly when something was redacted');
    must(JSON.stringify(e) === text, 'redaction modified its input');
    // (Whether the right values went is for redact.test.ts: a mutated key is rightly not redacted.)
    const redacted = JSON.stringify(event);
    must(redactAuditEvent(event).redactions.length === 0, 'redacting a redacted event redacted more');
    summarizeAudit([event]);
    const again = parseAuditLine(redacted, 1);
    must(!isAuditEventError(again), `a redacted event no longer validates: ${isAuditEventError(again) ? again.reason : ''}`);
    must(JSON.stringify(again) === redacted, 'validating an accepted event again changed it');
  }
}

const auditEventList: Target = {
  name: 'audit-eventlist',
  ext: 'json',
  corpus: eventListCorpus,
  generate(rng, corpus) {
    return mutateJson(rng, rng.pick(corpus.texts), corpus.texts);
  },
  check(input) {
    const r = typed(() => parseEventListJson(input), AuditFormatError);
    if (r instanceof Error) return 'refused';
    for (const e of r.errors) must(Number.isInteger(e.index) && typeof e.reason === 'string' && e.reason.length < 10_000, `an item error of ${e.reason.length} characters`);
    must(typeof JSON.stringify(r.errors) === 'string', 'JSON.stringify of the item errors');
    checkEvents(r.events);
    return r.errors.length === 0 ? 'accepted' : r.events.length === 0 ? 'all items rejected' : 'partial';
  },
};

const auditLine: Target = {
  name: 'audit-line',
  ext: 'txt',
  corpus: auditLineCorpus,
  generate(rng, corpus) {
    return mutateJson(rng, rng.pick(corpus.texts), corpus.texts);
  },
  check(input) {
    // As the log reader hands a line over: UTF-8, one line (a newline would have split it).
    const line = Buffer.from(input).toString('utf8').split('\n')[0]!;
    const r = parseAuditLine(line, 3);
    if (isAuditEventError(r)) {
      must(r.index === 3 && typeof r.reason === 'string' && r.reason.length < 10_000, 'a line error with its line number and a short reason');
      return 'rejected';
    }
    checkEvents([r]);
    return 'accepted';
  },
};

/** Trace-context headers for a review, chosen from its bytes (so a saved input replays the same). */
const HEADERS: readonly TraceHeaders[] = [
  {},
  { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', baggage: 'objectSetID=set-1' },
  { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', baggage: 'objectSetID=' },
  { traceparent: ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x'], baggage: ['a=b', 'objectSetID=%E2%9C%93'] },
  { traceparent: 'garbage', baggage: `objectSetID=${'x'.repeat(300)}` },
];

function headersFor(input: Uint8Array): TraceHeaders {
  let h = input.length;
  for (let i = 0; i < input.length; i += 997) h = (h * 31 + input[i]!) >>> 0;
  return HEADERS[h % HEADERS.length]!;
}

/** Applies add/replace ops (the webhook's) without cloning what they do not touch (objects may nest 100,000 deep). */
function applyPatch(doc: unknown, ops: readonly JsonPatchOp[]): unknown {
  let out = doc;
  for (const op of ops) {
    const tokens = op.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const set = (node: unknown, i: number): unknown => {
      must(typeof node === 'object' && node !== null && !Array.isArray(node), `patch ${op.op} ${op.path}: no object at /${tokens.slice(0, i).join('/')}`);
      const o = { ...(node as Record<string, unknown>) };
      if (i === tokens.length - 1) {
        must(op.op === 'add' || Object.hasOwn(o, tokens[i]!), `patch replace ${op.path}: no such member`);
        o[tokens[i]!] = op.value;
      } else o[tokens[i]!] = set(o[tokens[i]!], i + 1);
      return o;
    };
    out = set(out, 0);
  }
  return out;
}

const admission: Target = {
  name: 'admission',
  ext: 'json',
  corpus: admissionCorpus,
  generate(rng, corpus) {
    return mutateJson(rng, rng.pick(corpus.texts), corpus.texts);
  },
  check(input) {
    const review = typed(() => parseAdmissionReviewJson(Buffer.from(input).toString('utf8')), BadReviewError);
    if (review instanceof Error) return 'refused';
    const headers = headersFor(input);
    // mutate() "throws only on a bug": any throw is a failure here.
    const result = mutate(review, headers, { newObjsetId: () => 'fuzz-new-set' });
    const text = JSON.stringify(result.review);
    // Small, but for the request's uid, which the response must echo (kube-apiserver's are UUIDs).
    must(typeof text === 'string' && text.length < 10_000 + 6 * review.request.uid.length, `a response of ${text.length} characters`);
    must(result.review.response.uid === review.request.uid, 'the response carries the request uid');
    if (result.outcome !== 'patched') {
      must(result.patch.length === 0 && result.review.response.patch === undefined, `outcome ${result.outcome} with a patch`);
      return result.outcome;
    }
    const ops = JSON.parse(Buffer.from(result.review.response.patch!, 'base64').toString('utf8')) as JsonPatchOp[];
    must(isDeepStrictEqual(ops, result.patch), 'the base64 patch is the patch');
    // Applied, the patch converges: the same request on the patched object asks for nothing more.
    const patched = applyPatch(review.request.object, ops);
    const second = mutate({ ...review, request: { ...review.request, object: patched } }, headers, { newObjsetId: () => 'fuzz-other-set' });
    must(second.outcome !== 'patched', `a second pass patches again: ${JSON.stringify(second.patch).slice(0, 500)}`);
    return 'patched';
  },
};

export const TARGETS: readonly Target[] = [otlpProtobuf, otlpJson, auditEventList, auditLine, admission];

/**
 * The harness's own test (engine.test.ts), not run by default: case 7 never ends, case 9 allocates
 * without bound, case 11 throws a TypeError; the others pass.
 */
const selftest: Target = {
  name: 'selftest',
  ext: 'bin',
  corpus: () => ({ seeds: [], texts: [] }),
  generate: (_rng, _corpus, n) => Uint8Array.of(n & 0xff),
  check(input) {
    const n = input[0]!;
    if (n === 7) for (;;);
    if (n === 9) {
      const hog: number[][] = [];
      for (;;) hog.push(new Array<number>(1 << 20).fill(n));
    }
    if (n === 11) return String((null as unknown as { x: number }).x);
    return 'ok';
  },
};

export function target(name: string): Target {
  const t = name === 'selftest' ? selftest : TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${JSON.stringify(name)}: one of ${TARGETS.map((x) => x.name).join(', ')}`);
  return t;
}

/** For messages: the start of an input, as text when it is mostly text. */
export function preview(input: Uint8Array, n = 300): string {
  const head = input.subarray(0, n);
  const text = utf8.decode(head);
  const printable = [...text].filter((c) => c >= ' ' && c <= '~').length;
  const shown = printable > text.length * 0.9 ? JSON.stringify(text) : `hex ${Buffer.from(head).toString('hex')}`;
  return `${shown}${input.length > n ? ` ... (${input.length} bytes)` : ''}`;
}
