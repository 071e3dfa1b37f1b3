/**
 * The redaction rules as configuration, in the OpenTelemetry Collector's style (snake_case keys,
 * strict objects, a component with no value meaning its defaults), for the collector's
 * `processors.k8saudit_redaction` (README.md, "Redaction"):
 *
 *   processors:
 *     k8saudit_redaction:
 *       default_rules: true          # Secret data/stringData, TokenReview spec.token, TokenRequest status.token
 *       rules:
 *         - name: sealed-secrets     # optional: reported and counted under it
 *           resource: sealedsecrets
 *           group: bitnami.com       # optional: omitted (or null) = any group, "" = the core group
 *           subresource: ""          # optional: omitted (or null) = the resource and its subresources, "" = the resource only
 *           paths: [spec.encryptedData]
 */
import { z } from 'zod';
import { compileRedactionRules, parseRedactionPath } from './redact.js';
import type { RedactionRule, RedactionRules } from './redact.js';

const path = z.string().superRefine((p, ctx) => {
  try {
    parseRedactionPath(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** YAML's `group:` with no value is null: read as omitted (any group, the broader match). */
const optionalString = z.string().nullish().transform((v) => v ?? undefined);

export const redactionRuleSchema = z.strictObject({
  name: z.string().min(1).nullish().transform((v) => v ?? undefined),
  resource: z.string().min(1, 'expected a resource name, e.g. "secrets"'),
  group: optionalString,
  subresource: optionalString,
  paths: z.array(path).min(1, 'expected at least one path, e.g. "spec.password"'),
});

/** `processors.k8saudit_redaction`; null (the key with no value) is the defaults. */
export const k8sauditRedactionSchema = z.preprocess(
  (v) => (v === null || v === undefined ? {} : v),
  z.strictObject({
    default_rules: z.boolean().default(true),
    rules: z.preprocess((v) => v ?? [], z.array(redactionRuleSchema)),
  }),
);

export type K8sAuditRedactionConfig = z.output<typeof k8sauditRedactionSchema>;

/** The compiled rules a validated configuration asks for. */
export function redactionRulesFromConfig(config: K8sAuditRedactionConfig): RedactionRules {
  const rules: RedactionRule[] = config.rules.map((r) => ({
    resource: r.resource,
    paths: r.paths,
    ...(r.name !== undefined ? { name: r.name } : {}),
    ...(r.group !== undefined ? { group: r.group } : {}),
    ...(r.subresource !== undefined ? { subresource: r.subresource } : {}),
  }));
  return compileRedactionRules(rules, config.default_rules);
}
