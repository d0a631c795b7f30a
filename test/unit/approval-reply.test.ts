/**
 * The admin room's answers to approval requests, and the capability table they grant from: the
 * table in docs/gateway.md lists every capability with its defaults.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CAPABILITIES, CAPABILITY_NAMES, isCapability } from '../../formats/capabilities';
import { parseApprovalReply } from '../../services/approval-reply';

const ID = '3f9a1c2b7d10';

describe('parseApprovalReply', () => {
  it.each([
    [`approve ${ID}`, { decision: 'approve', requestId: ID }],
    [`  Approve ${ID.toUpperCase()}  `, { decision: 'approve', requestId: ID }],
    [
      `approve ${ID} 30m 5`,
      { decision: 'approve', requestId: ID, grantTtlMs: 1_800_000, grantUses: 5 },
    ],
    [
      `approve ${ID} 3 1h30m`,
      { decision: 'approve', requestId: ID, grantTtlMs: 5_400_000, grantUses: 3 },
    ],
    [`approve ${ID} 90s`, { decision: 'approve', requestId: ID, grantTtlMs: 90_000 }],
    [`deny ${ID}`, { decision: 'deny', requestId: ID }],
    [
      `deny ${ID} not during the freeze`,
      { decision: 'deny', requestId: ID, reason: 'not during the freeze' },
    ],
  ])('%s', (body, expected) => {
    expect(parseApprovalReply(body)).toEqual(expected);
  });

  it.each([
    'hello everyone',
    'approve',
    'approve the deploy please',
    `approve ${ID}x`,
    `approve ${ID} 0`,
    `approve ${ID} soon`,
    `approve ${ID} 5m 10m`,
    `please approve ${ID}`,
  ])('is not an answer: %s', (body) => {
    expect(parseApprovalReply(body)).toBeUndefined();
  });
});

describe('capabilities', () => {
  it('every capability has positive defaults', () => {
    for (const name of CAPABILITY_NAMES) {
      expect(isCapability(name)).toBe(true);
      expect(CAPABILITIES[name].defaultGrantTtlMs).toBeGreaterThan(0);
      expect(CAPABILITIES[name].defaultGrantUses).toBeGreaterThan(0);
    }
    expect(isCapability('toString')).toBe(false);
    expect(isCapability('shell')).toBe(false);
  });

  it('docs/gateway.md lists each capability with its defaults', () => {
    const doc = readFileSync(path.join(__dirname, '../../docs/gateway.md'), 'utf8');
    for (const name of CAPABILITY_NAMES) {
      const spec = CAPABILITIES[name];
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${name}\``));
      expect(row).toBeDefined();
      expect(row).toContain(`${spec.defaultGrantTtlMs / 60_000} min`);
      expect(row).toContain(`| ${spec.defaultGrantUses} `);
    }
  });
});
