import type { AuditLog } from '../services/audit-log';
import type { AuditArgs } from './container-types';

/** Audit writes from workflows; `dedupe_key` makes a retried write land once. */
export function createAuditActivities(deps: { auditLog: AuditLog }) {
  return {
    async recordAudit(args: AuditArgs): Promise<void> {
      deps.auditLog.append(args);
    },
  };
}
