/**
 * The real kube-apiserver recordings in ../shared/data/captures (README there): every OTLP
 * ExportTraceServiceRequest exactly as kube-apiserver sent it (`otlp.bin`: 4-byte big-endian length,
 * then the protobuf), the audit log, the callers' own spans, and facts about the scenario.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateAuditEvent, type AuditEvent } from '@kube-correlate/audit';
import { decodeTraceRequest, decodeTraceRequestJson, type Span } from '@kube-correlate/otlp';
import { sharedDataFile, SHARED_DATA } from './coverage.js';

export interface CaptureFacts {
  namespace: string;
  /** The caller's span sent as traceparent by an admin (parent accepted) and by alice (a span link). */
  traceparentAdmin: { traceId: string; spanId: string };
  traceparentAlice: { traceId: string; spanId: string };
  /** The long Audit-ID a client chose (kube-apiserver puts its first 64 characters on spans). */
  clientAuditID: string;
}

export interface Capture {
  /** Directory name, e.g. v1.37.2-full. */
  name: string;
  /** kube-apiserver's gitVersion. */
  serverVersion: string;
  /** The ExportTraceServiceRequests, as sent. */
  otlpRequests: Uint8Array[];
  /** Every span of them, decoded. */
  spans: Span[];
  /** Audit events, one per line of audit.log, in order. */
  auditEvents: AuditEvent[];
  /** The callers' own spans (their traceparent was sent to kube-apiserver). */
  callerSpans: Span[];
  facts: CaptureFacts;
}

/** The captures present (every directory of ../shared/data/captures with an otlp.bin). */
export function captureNames(): string[] {
  sharedDataFile('captures/README.md');
  return readdirSync(join(SHARED_DATA, 'captures'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .filter((n) => { try { sharedDataFile(`captures/${n}/otlp.bin`); return true; } catch { return false; } })
    .sort();
}

export function loadCapture(name: string): Capture {
  const file = (f: string) => sharedDataFile(`captures/${name}/${f}`);
  const bin = readFileSync(file('otlp.bin'));
  const otlpRequests: Uint8Array[] = [];
  for (let i = 0; i < bin.length;) {
    const n = bin.readUInt32BE(i);
    otlpRequests.push(bin.subarray(i + 4, i + 4 + n));
    i += 4 + n;
  }
  const spans = otlpRequests.flatMap((r) => decodeTraceRequest(r).spans);
  const auditEvents = readFileSync(file('audit.log'), 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
    const e = validateAuditEvent(JSON.parse(l));
    if (typeof e === 'string') throw new Error(`${name}/audit.log line ${i + 1}: ${e}`);
    return e;
  });
  const callerSpans = readFileSync(file('caller-spans.otlp.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).flatMap((l) => decodeTraceRequestJson(JSON.parse(l)).spans);
  const version = JSON.parse(readFileSync(file('version.json'), 'utf8')) as { serverVersion: { gitVersion: string } };
  return {
    name, serverVersion: version.serverVersion.gitVersion, otlpRequests, spans, auditEvents, callerSpans,
    facts: JSON.parse(readFileSync(file('facts.json'), 'utf8')) as CaptureFacts,
  };
}
