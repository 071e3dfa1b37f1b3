export { parseBaggage, baggageValue } from './baggage.js';
export type { BaggageMember } from './baggage.js';
export {
  mutate, sameDesiredState, parseAdmissionReview, parseAdmissionReviewJson, allowResponse, validTraceparent, validObjsetId, escapeJsonPointer, BadReviewError,
  ADMISSION_API_VERSION,
} from './mutate.js';
// The names are in @kube-correlate/semconv; re-exported for the webhook's users.
export { ANNOTATION_SPAN, ANNOTATION_OBJSETID, BAGGAGE_OBJSETID, AUDIT_ANNOTATION_TRACEPARENT, AUDIT_ANNOTATION_OBJSETID } from '@kube-correlate/semconv';
export type {
  AdmissionRequest, AdmissionResponse, AdmissionReviewRequest, AdmissionReviewResponse, JsonPatchOp, TraceHeaders, ReviewOutcome,
  HeaderState, MutateOptions, MutateResult, Operation,
} from './mutate.js';
export { WebhookMetrics } from './metrics.js';
export type { ReviewMetricOutcome } from './metrics.js';
export {
  WebhookServer, WebhookStartError, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, DEFAULT_HOST, DEFAULT_CERT_POLL_INTERVAL_MS, TLS_MIN_VERSION, TLS_CIPHERS,
  tlsErrorReason,
} from './server.js';
export type { WebhookServerOptions, WebhookStartErrorCode, TlsErrorReason } from './server.js';
