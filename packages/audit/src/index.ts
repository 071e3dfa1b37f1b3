export { AUDIT_STAGES, AuditFormatError } from './model.js';
export type { AuditEvent, AuditStage, AuditUser, AuditObjectRef, AuditResponseStatus, AuditEventError } from './model.js';
