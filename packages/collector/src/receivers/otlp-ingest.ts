import type { DecodedTraces } from '@kube-correlate/otlp';
import type { PipelineMetrics } from '@kube-correlate/telemetry';
import { RAW_OTLP_REQUEST, type SpanConsumer } from '../consumer.js';

/** At most this many per-span reasons go into a partial-success message; the count is always exact. */
const MAX_REASONS = 5;

/**
 * Hands the valid spans of one decoded OTLP request to the pipeline and counts them. Returns the
 * OTLP partial-success fields when some spans were rejected (invalid ids), undefined otherwise.
 * Throws what the consumer throws (RetryableError for backpressure). `raw`: the protobuf request
 * `decoded` came from, passed on (RAW_OTLP_REQUEST) when every span of it is valid.
 */
export async function ingestDecoded(
  receiver: string,
  decoded: DecodedTraces,
  consumer: SpanConsumer,
  metrics: PipelineMetrics,
  raw?: Uint8Array,
): Promise<{ rejectedSpans: number; errorMessage: string } | undefined> {
  metrics.decodedSpans.inc({ receiver }, decoded.spans.length + decoded.rejected.length);
  if (raw && decoded.rejected.length === 0) RAW_OTLP_REQUEST.set(decoded.spans, raw);
  if (decoded.spans.length) await consumer.consumeSpans(decoded.spans);
  metrics.receiverItems.inc({ receiver, signal: 'spans' }, decoded.spans.length);
  if (decoded.rejected.length === 0) {
    metrics.receiverRequests.inc({ receiver, outcome: 'ok' });
    return undefined;
  }
  metrics.receiverRefused.inc({ receiver, reason: 'invalid_span' }, decoded.rejected.length);
  metrics.receiverRequests.inc({ receiver, outcome: 'partial' });
  const shown = decoded.rejected.slice(0, MAX_REASONS).map((r) => r.reason);
  const more = decoded.rejected.length > MAX_REASONS ? `; and ${decoded.rejected.length - MAX_REASONS} more` : '';
  return {
    rejectedSpans: decoded.rejected.length,
    errorMessage: `${decoded.rejected.length} of ${decoded.rejected.length + decoded.spans.length} spans rejected: ${shown.join('; ')}${more}`,
  };
}
