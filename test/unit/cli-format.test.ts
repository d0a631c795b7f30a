// The CLI's human output: tables, times, durations and each command's rendering.
process.env.TZ = 'UTC';

import { renderAuditTail, renderVerify, summarizeDetails } from '../../cli/commands/audit';
import { renderHealth, renderList, renderStatus } from '../../cli/commands/bridge';
import { renderShow, usd } from '../../cli/commands/show';
import {
  cell,
  formatBytes,
  formatDuration,
  formatTime,
  formatTimeAgo,
  renderFields,
  renderTable,
} from '../../cli/format';

const NOW = Date.parse('2026-02-11T12:00:00Z');

describe('renderTable', () => {
  test('pads every column to its widest cell, two spaces apart, no trailing blanks', () => {
    expect(
      renderTable(
        ['NAME', 'STATE', 'NOTE'],
        [
          ['a', 'Active', ''],
          ['longer-name', 'Ended', 'x'],
        ],
      ),
    ).toBe('NAME         STATE   NOTE\n' + 'a            Active  -\n' + 'longer-name  Ended   x\n');
  });

  test('a header wider than every cell sets the width; no rows gives the header only', () => {
    expect(renderTable(['LONG HEADER', 'B'], [['x', 'y']])).toBe(
      'LONG HEADER  B\nx            y\n',
    );
    expect(renderTable(['A', 'B'], [])).toBe('A  B\n');
  });

  test('control characters from the bridge cannot reach the terminal', () => {
    const out = renderTable(['ROOM'], [['!evil\u001b[2J:x\nsecond']]);
    expect(out).toBe('ROOM\n!evil?[2J:x?second\n');
    expect(cell(null)).toBe('-');
    expect(cell(undefined)).toBe('-');
    expect(cell(3)).toBe('3');
    expect(cell({ a: 1 })).toBe('{"a":1}');
  });

  test('widths count characters, not UTF-16 units', () => {
    expect(
      renderTable(
        ['X', 'Y'],
        [
          ['😀', '1'],
          ['ab', '2'],
        ],
      ),
    ).toBe('X   Y\n😀   1\nab  2\n');
  });

  test('fields align their labels', () => {
    expect(
      renderFields([
        ['a', 1],
        ['long', null],
      ]),
    ).toBe('a     1\nlong  -\n');
  });
});

describe('times, durations, sizes', () => {
  test('formatTime is local time to the second; junk is shown as it is', () => {
    expect(formatTime('2026-02-11T09:05:03.120Z')).toBe('2026-02-11 09:05:03');
    expect(formatTime(null)).toBe('-');
    expect(formatTime('not a time')).toBe('not a time');
  });

  test.each([
    [0, '0s'],
    [59_999, '59s'],
    [60_000, '1m00s'],
    [323_000, '5m23s'],
    [3_600_000, '1h00m'],
    [7_500_000, '2h05m'],
    [86_400_000 * 3 + 3_600_000 * 4, '3d04h'],
    [-5, '0s'],
  ])('formatDuration(%d) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  test('formatTimeAgo says how long ago, or how long until', () => {
    expect(formatTimeAgo('2026-02-11T11:56:50Z', NOW)).toBe('2026-02-11 11:56:50 (3m10s ago)');
    expect(formatTimeAgo('2026-02-11T12:00:30Z', NOW)).toBe('2026-02-11 12:00:30 (in 30s)');
    expect(formatTimeAgo(undefined, NOW)).toBe('-');
  });

  test('formatBytes', () => {
    expect([formatBytes(4), formatBytes(1536), formatBytes(2 * 1024 * 1024)]).toEqual([
      '4 B',
      '1.5 KiB',
      '2.0 MiB',
    ]);
  });
});

describe('command output', () => {
  test('status', () => {
    expect(
      renderStatus({
        version: '1.0.0',
        state: 'running',
        socket: '/run/armorclaw/bridge.sock',
        containers: 1,
        container_ids: ['a1b2c3d4e5f6a7b8c9d0'],
      }),
    ).toBe(
      'bridge      running (version 1.0.0)\n' +
        'socket      /run/armorclaw/bridge.sock\n' +
        'containers  1 active: a1b2c3d4e5f6\n',
    );
  });

  test('health', () => {
    expect(
      renderHealth(
        {
          status: 'unhealthy',
          checked_at: '2026-02-11T11:59:59Z',
          checks: {
            temporal: { status: 'ok', latency_ms: 1.5 },
            docker: { status: 'error', latency_ms: 2000, error: 'no answer within 2000 ms' },
          },
        },
        NOW,
      ),
    ).toBe(
      'bridge unhealthy (checked 2026-02-11 11:59:59 (1s ago))\n' +
        'CHECK     STATUS  LATENCY  ERROR\n' +
        'temporal  ok      1.5 ms   -\n' +
        'docker    error   2000 ms  no answer within 2000 ms\n',
    );
  });

  test('list: runs with their states, a terminated run says so, calls with theirs', () => {
    const run = {
      container_name: 'armorclaw-openclaw-1',
      container_id: 'abcdef0123456789abcdef',
      state: 'Active',
      agent_type: 'openclaw',
      key_id: 'k1',
      host_id: 'h',
      started_at: '2026-02-11T11:58:00Z',
      closed_at: null,
      workflow_status: 'RUNNING',
    };
    const out = renderList(
      [
        run,
        {
          ...run,
          container_name: 'armorclaw-openclaw-0',
          container_id: null,
          closed_at: '2026-02-11T11:59:00Z',
          workflow_status: 'TERMINATED',
        },
      ],
      true,
      [
        {
          session_id: 'sess-1',
          room_id: '!r:x',
          state: 'connected',
          user_state: 'Live',
          duration: '1m00s',
          created_at: '2026-02-11T11:59:00Z',
          host_id: 'h',
        },
      ],
      { now: () => NOW },
    );
    expect(out).toBe(
      'CONTAINER RUNS (2, more with a higher --limit)\n' +
        'NAME                  STATE                CONTAINER     AGENT     KEY  STARTED                          ENDED\n' +
        'armorclaw-openclaw-1  Active               abcdef012345  openclaw  k1   2026-02-11 11:58:00 (2m00s ago)  -\n' +
        'armorclaw-openclaw-0  Active (terminated)  -             openclaw  k1   2026-02-11 11:58:00 (2m00s ago)  2026-02-11 11:59:00 (1m00s ago)\n' +
        '\n' +
        'VOICE CALLS (1)\n' +
        'SESSION  STATE  ROOM  DURATION  STARTED                          HOST\n' +
        'sess-1   Live   !r:x  1m00s     2026-02-11 11:59:00 (1m00s ago)  h\n',
    );
    expect(renderList([], false, [], { now: () => NOW })).toBe(
      'CONTAINER RUNS (0)\n  none\n\nVOICE CALLS (0)\n  none\n',
    );
  });

  test('audit tail: oldest first, details on one line', () => {
    const entry = (seq: number, details: Record<string, unknown>) => ({
      seq,
      timestamp: `2026-02-11T10:00:0${seq}Z`,
      event_type: 'call_ended',
      session_id: 's',
      room_id: '!r:x',
      user_id: null,
      container_id: null,
      details,
      hash: 'h',
      prev_hash: 'p',
    });
    expect(renderAuditTail([entry(3, { reason: 'ttl' }), entry(2, { n: 1, ok: true })])).toBe(
      'SEQ  TIME                 EVENT       SESSION  ROOM  USER  DETAILS\n' +
        '2    2026-02-11 10:00:02  call_ended  s        !r:x  -     n=1 ok=true\n' +
        '3    2026-02-11 10:00:03  call_ended  s        !r:x  -     reason=ttl\n',
    );
    expect(renderAuditTail([])).toBe('no audit entries\n');
    expect(summarizeDetails({ text: 'x'.repeat(100) })).toHaveLength(80);
    expect(summarizeDetails({})).toBe('');
  });

  test('show: an ended run with its end reason, usage against its limit, the last notifications', () => {
    const run = {
      state: 'Failed' as const,
      container_name: 'armorclaw-openclaw-1',
      container_id: 'abcdef0123456789abcdef',
      agent_type: 'openclaw',
      key_id: 'k1',
      image: 'armorclaw/agent:v1',
      secrets_removed: true,
      end_reason: 'container_exited' as const,
      end_detail: 'the container exited',
      exit_code: 137,
      cleanup_done: true,
      secrets_mode: 'proxy' as const,
      usage: {
        requests: 3,
        input_tokens: 1200,
        output_tokens: 350,
        cost_usd: 0.0065,
        limit_usd: 2,
      },
      notifications: Array.from({ length: 12 }, (_, i) => ({
        kind: 'progress' as const,
        message: i === 11 ? 'line one\nline two ' + 'x'.repeat(200) : `step ${i}`,
        at: `2026-02-11T11:00:${String(i).padStart(2, '0')}Z`,
      })),
    };
    const lines = renderShow(run).split('\n');
    expect(lines.slice(0, 15)).toEqual([
      'run           armorclaw-openclaw-1',
      'container     abcdef012345',
      'state         Failed',
      'end reason    container_exited (exit code 137): the container exited',
      'agent         openclaw (key k1, image armorclaw/agent:v1)',
      'secrets mode  proxy (secrets file removed)',
      'requests      3',
      'tokens        1200 input, 350 output',
      'cost          $0.0065 of $2.00 limit',
      'cleanup       done',
      '',
      'NOTIFICATIONS (last 10 of 12)',
      'TIME                 KIND      MESSAGE',
      '2026-02-11 11:00:02  progress  step 2',
      '2026-02-11 11:00:03  progress  step 3',
    ]);
    expect(lines).toHaveLength(24); // 10 notifications, and the final newline
    // The last message: one line, control characters shown as ?, cut at 100 characters.
    expect(lines[22]).toMatch(/^2026-02-11 11:00:11 {2}progress {2}line one\?line two x+…$/);
    expect(lines[22]!.split('progress  ')[1]).toHaveLength(100);
  });

  test('show: a run still running, file mode, no limit, no notifications', () => {
    expect(
      renderShow({
        state: 'Active',
        container_name: 'armorclaw-openclaw-2',
        agent_type: 'openclaw',
        key_id: 'k1',
        image: 'armorclaw/agent:v1',
        secrets_removed: false,
        cleanup_done: false,
        secrets_mode: 'file',
        usage: { requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, limit_usd: null },
        notifications: [],
      }),
    ).toBe(
      'run           armorclaw-openclaw-2\n' +
        'container     -\n' +
        'state         Active\n' +
        'end reason    -\n' +
        'agent         openclaw (key k1, image armorclaw/agent:v1)\n' +
        'secrets mode  file (secrets file present)\n' +
        'requests      0\n' +
        'tokens        0 input, 0 output\n' +
        'cost          $0.00 no limit\n' +
        'cleanup       not yet\n' +
        '\n' +
        'NOTIFICATIONS (0)\n' +
        '  none\n',
    );
    expect([0, 0.0065, 2, 1.5, 0.000001, 12.345678].map(usd)).toEqual([
      '$0.00',
      '$0.0065',
      '$2.00',
      '$1.50',
      '$0.000001',
      '$12.345678',
    ]);
  });

  test('audit verify: ok, broken', () => {
    const head = { seq: 7, hash: 'a'.repeat(64) };
    expect(renderVerify({ ok: true, entries: 7, head })).toBe(
      `audit chain ok: 7 entries verified\nhead 7:${'a'.repeat(64)}\n`,
    );
    expect(renderVerify({ ok: true, entries: 0, head: null })).toMatch(/head none \(empty log\)/);
    expect(
      renderVerify({
        ok: false,
        entries: 7,
        head,
        first_bad_seq: 3,
        reason: 'hash does not match',
      }),
    ).toMatch(/^audit chain BROKEN at entry 3: hash does not match\n/);
  });
});
