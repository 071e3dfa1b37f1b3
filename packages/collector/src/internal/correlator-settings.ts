import { resolve } from 'node:path';
import { loadCatalogueFile, mapAuditEvent } from '@kube-correlate/apicoverage';
import type { DescribeRequest } from '@kube-correlate/correlator';
import type { Logger } from '@kube-correlate/telemetry';
import { z } from 'zod';
import { ConfigError } from '../confmap/problems.js';
import { duration, positiveInt } from '../confmap/schema.js';

/** Settings of the join that the correlator exporter (embedded) and the correlator processor (Kafka mode) share. */

export const CORRELATOR_DEFAULTS = {
  apiSpec: '',
  settleAfter: '5s',
  pendingAuditTtl: '30s',
  maxTracesInFlight: 50000,
} as const;

export const correlatorSettings = {
  /**
   * A Kubernetes OpenAPI v2 document (the cluster's /openapi/v2): when set, each request's route
   * span gets k8s.api.operation_id and k8s.api.stability. '' (the default) leaves them out.
   * `api_spec: ${env:KC_API_SPEC:-}` with the variable unset is '' too; YAML null is the same.
   */
  api_spec: z.preprocess((v) => v ?? CORRELATOR_DEFAULTS.apiSpec, z.string()),
  /** Idle window: a trace settles once nothing new arrived for it this long. */
  settle_after: duration.default(CORRELATOR_DEFAULTS.settleAfter),
  /** Audit events wait this long for their spans, then go on alone. */
  pending_audit_ttl: duration.default(CORRELATOR_DEFAULTS.pendingAuditTtl),
  max_traces_in_flight: positiveInt.default(CORRELATOR_DEFAULTS.maxTracesInFlight),
};

/**
 * The `api_spec` option: audit request -> its API operation, from the OpenAPI document's
 * catalogue. A file that cannot be read is a ConfigError naming the key (`at`) and the file.
 */
export function describeFromSpec(path: string, source: string, at: string, logger: Logger): DescribeRequest | undefined {
  if (!path) return undefined;
  let catalogue;
  try {
    catalogue = loadCatalogueFile(resolve(path));
  } catch (err) {
    throw new ConfigError(source, [{ path: `${at}.api_spec`, message: (err as Error).message }]);
  }
  logger.info({ apiSpec: path, endpoints: catalogue.endpoints.length }, 'naming API operations from the OpenAPI spec');
  return (events) => {
    const e = events.find((x) => x.stage === 'ResponseComplete') ?? events[0];
    const m = e ? mapAuditEvent(catalogue, e) : undefined;
    return m?.type === 'endpoint' ? { operationId: m.endpoint.operationId, stability: m.endpoint.level } : undefined;
  };
}
