/**
 * The gateway's approval and incident handlers on their own: params, the checks they make before
 * Temporal is asked (isolation, decision and grant fields, request id shape), how the sessions'
 * errors become the spec's codes, and that a bundle never echoes a token. Temporal is a stub
 * here; the real thing is in test/integration/approvals.test.ts.
 */
import type { Client } from '@temporalio/client';
import { approvalGatewayError, registerApprovalMethods } from '../../gateway/methods/approval';
import { registerIncidentMethods } from '../../gateway/methods/incident';
import { GatewayError, GatewayMethods, type GatewayCaller } from '../../gateway/protocol';
import { ApprovalError } from '../../sessions/approvals';
import type { IncidentStatus } from '../../workflows/definitions';

const caller: GatewayCaller = {
  role: 'admin',
  subject: 'token:gwt_1',
  auditId: 'req_1',
  address: '127.0.0.1',
};
const HASH = 'f'.repeat(64);

function setup(isolated: boolean) {
  const logs: unknown[] = [];
  const bundles: Array<{ hashes: string[]; by: string }> = [];
  const methods = new GatewayMethods();
  const status = (active: boolean, hashes: string[] = []): IncidentStatus => ({
    active,
    since: active ? '2026-12-04T10:00:00.000Z' : null,
    bundledBy: active ? 'gateway:token:gwt_1' : null,
    liftedAt: null,
    liftedBy: null,
    proactiveDisabled: active,
    toolIsolation: active,
    revokedTokenHashes: hashes,
    policyLogs: [],
  });
  registerApprovalMethods(methods, {
    client: {} as Client,
    incident: {
      toolIsolationEnabled: async () => isolated,
      log: async (e) => void logs.push(e),
    },
  });
  registerIncidentMethods(methods, {
    incident: {
      bundle: async (hashes, by) => {
        bundles.push({ hashes, by });
        return status(true, hashes);
      },
      lift: async () => status(false),
      status: async () => status(isolated),
    },
    revokeTokens: (tokens) => tokens.map(() => HASH),
  });
  const call = (name: string, params: unknown) => methods.get(name)!(params, caller);
  return { call, logs, bundles };
}

const code = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (e instanceof GatewayError ? e.code : `not a GatewayError: ${String(e)}`),
  );

describe('approval.resolve', () => {
  it('refuses to approve while tools are isolated, and logs the refusal', async () => {
    const { call, logs } = setup(true);
    expect(
      await code(call('approval.resolve', { requestId: 'abcdefabcdef', decision: 'approve' })),
    ).toBe('FORBIDDEN');
    expect(logs).toEqual([
      {
        kind: 'grant_refused',
        detail: { request_id: 'abcdefabcdef', by: 'gateway:token:gwt_1' },
      },
    ]);
  });

  it.each([
    [{ requestId: 'abcdefabcdef' }, 'BAD_REQUEST'],
    [{ requestId: 'abcdefabcdef', decision: 'maybe' }, 'BAD_REQUEST'],
    [{ requestId: 'abcdefabcdef', decision: 'deny', grantUses: 2 }, 'BAD_REQUEST'],
    [{ requestId: 'abcdefabcdef', decision: 'approve', grantUses: 0 }, 'BAD_REQUEST'],
    [{ requestId: 'abcdefabcdef', decision: 'approve', grantTtlMs: 1.5 }, 'BAD_REQUEST'],
    [{ requestId: 'abcdefabcdef', decision: 'approve', extra: 1 }, 'BAD_REQUEST'],
    [{ requestId: 'no-such-id', decision: 'deny' }, 'NOT_FOUND'],
  ])('%j → %s', async (params, expected) => {
    expect(await code(setup(false).call('approval.resolve', params))).toBe(expected);
  });

  it('maps the sessions’ errors to the spec’s codes', () => {
    const as = (e: unknown) => (e as GatewayError).code;
    expect(as(approvalGatewayError(new ApprovalError('not_found', 'x')))).toBe('NOT_FOUND');
    expect(as(approvalGatewayError(new ApprovalError('not_pending', 'x')))).toBe('BAD_REQUEST');
    expect(as(approvalGatewayError(new ApprovalError('unavailable', 'x')))).toBe('RUN_UNAVAILABLE');
    const other = new Error('boom');
    expect(approvalGatewayError(other)).toBe(other);
  });

  it('approval.list takes only a known status', async () => {
    expect(await code(setup(false).call('approval.list', { status: 'granted' }))).toBe(
      'BAD_REQUEST',
    );
  });
});

describe('incident.bundle', () => {
  it('revokes, records hashes only and answers the forensic bundle', async () => {
    const { call, bundles } = setup(false);
    const token = 'acgw_' + 'x'.repeat(43);
    const bundle = (await call('incident.bundle', { tokens: [token] })) as Record<string, unknown>;
    expect(bundles).toEqual([{ hashes: [HASH], by: 'gateway:token:gwt_1' }]);
    expect(bundle).toMatchObject({
      revokedTokenHashes: [HASH],
      proactiveDisabled: true,
      active: true,
    });
    expect(bundle.isolatedTools).toEqual(expect.arrayContaining(['shell.exec', 'fs.write']));
    expect(JSON.stringify(bundle)).not.toContain(token);
  });

  it('takes no tokens too, and refuses malformed params', async () => {
    const { call } = setup(false);
    expect(await code(call('incident.bundle', {}))).toBe('ok');
    expect(await code(call('incident.bundle', { tokens: 'acgw_x' }))).toBe('BAD_REQUEST');
    expect(await code(call('incident.bundle', { tokens: [''] }))).toBe('BAD_REQUEST');
    expect(await code(call('incident.lift', { force: true }))).toBe('BAD_REQUEST');
  });
});
