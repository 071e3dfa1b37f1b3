import type { DecodedTraces } from '@kube-correlate/otlp';
import { RAW_OTLP_REQUEST, type SpanConsumer } from '../../component/component.js';
import type { ReceiverCounters } from '../../internal/receiver-counters.js';

/** At most this many per-span reasons go into a partial-success message; the count is always exact. */
const MAX_REASONS = 5;

/**
 * Hands the valid spans of one decoded OTLP request to the pipeline and counts them. Returns the
 * OTLP partial-success fields when some spans were rejected (invalid ids), undefined otherwise.
 * Throws what the consumer throws (RetryableError for backpressure). `raw`: the protobuf request
 * `decoded` came from, passed on (RAW_OTLP_REQUEST) when every span of it is valid.
 */
export async function ingestDecoded(
  counters: ReceiverCounters,
  decoded: DecodedTraces,
  consumer: SpanConsumer,
  raw?: Uint8Array,
): Promise<{ rejectedSpans: number; errorMessage: string } | undefined> {
  counters.decodedSpans(decoded.spans.length + decoded.rejected.length);
  if (raw && decoded.rejected.length === 0) RAW_OTLP_REQUEST.set(decoded.spans, raw);
  if (decoded.spans.length) await consumer.consumeSpans(decoded.spans);
  counters.accepted('spans', decoded.spans.length);
  if (decoded.rejected.length === 0) {
    counters.answered('ok');
    return undefined;
  }
  counters.refusedItems('invalid_span', decoded.rejected.length);
  counters.answered('partial');
  const shown = decoded.rejected.slice(0, MAX_REASONS).map((r) => r.reason);
  const more = decoded.rejected.length > MAX_REASONS ? `; and ${decoded.rejected.length - MAX_REASONS} more` : '';
  return {
    rejectedSpans: decoded.rejected.length,
    errorMessage: `${decoded.rejected.length} of ${decoded.rejected.length + decoded.spans.length} spans rejected: ${shown.join('; ')}${more}`,
  };
}
