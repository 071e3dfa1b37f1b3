export { AUDIT_STAGES, AuditFormatError } from './model.js';
export type { AuditEvent, AuditStage, AuditUser, AuditObjectRef, AuditResponseStatus, AuditEventError } from './model.js';
export {
  AUDIT_API_VERSIONS,
  MAX_AUDIT_EVENT_DEPTH,
  MAX_AUDIT_ID_LENGTH,
  validateAuditEvent,
  parseEventList,
  parseEventListJson,
  parseAuditLine,
  isAuditEventError,
  auditIDForSpans,
} from './event-list.js';
export type { AuditApiVersion } from './event-list.js';
export { parseAuditTimestamp } from './timestamp.js';
export { summarizeAudit, auditEventKey, auditEventsConflict, canonicalJson, canonicalAuditJson } from './summary.js';
export { auditEventJson, fullAuditEvent, holdAuditEvent, isHeldAuditEvent, readAuditEventJson, readAuditEventValue } from './held.js';
export type { HeldAuditEvent, ReadAuditEvent } from './held.js';
export type { AuditSummary } from './summary.js';
export { readAuditLogFile, AuditLogFollower, DEFAULT_MAX_LINE_BYTES } from './log-file.js';
export type { AuditLogError, AuditLogHandlers, AuditLogFollowerOptions } from './log-file.js';
export {
  REDACTED, LAST_APPLIED_ANNOTATION, DEFAULT_REDACTION_RULES, DEFAULT_RULES, RedactionRules, RedactionRuleError,
  compileRedactionRules, parseRedactionPath, redactAuditEvent,
} from './redact.js';
export type { RedactionRule, Redaction, RedactionPathSegment } from './redact.js';
export { redactionRuleSchema, k8sauditRedactionSchema, redactionRulesFromConfig } from './redaction-config.js';
export type { K8sAuditRedactionConfig } from './redaction-config.js';
