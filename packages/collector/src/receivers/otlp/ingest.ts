import { decodeTraceRequest, OtlpDecodeError, scanTraceRequest, type DecodedTraces, type RejectedSpan } from '@kube-correlate/otlp';
import { RAW_OTLP_REQUEST, type SpanConsumer } from '../../component/component.js';
import { PermanentError } from '../../component/errors.js';
import type { ReceiverCounters } from '../../internal/receiver-counters.js';

/** At most this many per-span reasons go into a partial-success message; the count is always exact. */
const MAX_REASONS = 5;

/** The OTLP partial-success fields, when some spans were rejected. */
export type PartialSuccess = { rejectedSpans: number; errorMessage: string } | undefined;

/**
 * Takes one OTLP/protobuf ExportTraceServiceRequest: when every consumer downstream takes scanned
 * spans (`consumeRawSpans`, e.g. receiver -> memory_limiter -> kafka), the request is scanned
 * (scanTraceRequest: the decoder's validation, no span model), else decoded. Either way the same
 * requests are refused and the same spans rejected. Malformed bytes are a PermanentError
 * (`malformed_protobuf`); otherwise as ingestDecoded.
 */
export async function ingestProtobuf(counters: ReceiverCounters, request: Uint8Array, consumer: SpanConsumer): Promise<PartialSuccess> {
  try {
    if (consumer.consumeRawSpans) {
      const scanned = scanTraceRequest(request);
      return await ingest(counters, scanned.spans.length, scanned.rejected, () => consumer.consumeRawSpans!(scanned.spans));
    }
    const decoded = decodeTraceRequest(request);
    return await ingestDecoded(counters, decoded, consumer, request);
  } catch (err) {
    if (err instanceof OtlpDecodeError) throw new PermanentError(`malformed ExportTraceServiceRequest: ${err.message}`, { reason: 'malformed_protobuf' });
    throw err;
  }
}

/**
 * Hands the valid spans of one decoded OTLP request to the pipeline and counts them. Returns the
 * OTLP partial-success fields when some spans were rejected (invalid ids), undefined otherwise.
 * Throws what the consumer throws (RetryableError for backpressure). `raw`: the protobuf request
 * `decoded` came from, passed on (RAW_OTLP_REQUEST) when every span of it is valid.
 */
export function ingestDecoded(counters: ReceiverCounters, decoded: DecodedTraces, consumer: SpanConsumer, raw?: Uint8Array): Promise<PartialSuccess> {
  if (raw && decoded.rejected.length === 0) RAW_OTLP_REQUEST.set(decoded.spans, raw);
  return ingest(counters, decoded.spans.length, decoded.rejected, () => consumer.consumeSpans(decoded.spans));
}

async function ingest(counters: ReceiverCounters, accepted: number, rejected: readonly RejectedSpan[], hand: () => void | Promise<void>): Promise<PartialSuccess> {
  counters.decodedSpans(accepted + rejected.length);
  if (accepted) await hand();
  counters.accepted('spans', accepted);
  if (rejected.length === 0) {
    counters.answered('ok');
    return undefined;
  }
  counters.refusedItems('invalid_span', rejected.length);
  counters.answered('partial');
  const shown = rejected.slice(0, MAX_REASONS).map((r) => r.reason);
  const more = rejected.length > MAX_REASONS ? `; and ${rejected.length - MAX_REASONS} more` : '';
  return {
    rejectedSpans: rejected.length,
    errorMessage: `${rejected.length} of ${rejected.length + accepted} spans rejected: ${shown.join('; ')}${more}`,
  };
}
