// cron.add's timing (gateway/methods/cron.ts): what each job type takes and what it refuses
// (BAD_REQUEST saying what was expected). The schedules themselves are the integration tier's:
// the time-skipping test server does not implement Temporal Schedules.
import { cronTiming } from '../../gateway/methods/cron';

const NOW = Date.parse('2026-12-04T10:00:00.250Z');

test('every: a duration of at least a second', () => {
  expect(cronTiming('every', '2s', NOW)).toEqual({ kind: 'every', everyMs: 2_000 });
  expect(cronTiming('every', '30m', NOW)).toEqual({ kind: 'every', everyMs: 1_800_000 });
  expect(cronTiming('every', '1h30m', NOW)).toEqual({ kind: 'every', everyMs: 5_400_000 });
  for (const bad of ['500ms', 'soon', '0s', '*/5 * * * *']) {
    expect(() => cronTiming('every', bad, NOW)).toThrow(/an "every" job takes a duration/);
  }
});

test('cron: five fields, UTC', () => {
  expect(cronTiming('cron', '*/5 * * * *', NOW)).toEqual({
    kind: 'cron',
    expression: '*/5 * * * *',
  });
  expect(cronTiming('cron', ' 0  9 * * MON-FRI ', NOW)).toEqual({
    kind: 'cron',
    expression: '0 9 * * MON-FRI',
  });
  for (const bad of ['* * * *', '* * * * * *', '0 9 * * $(reboot)', '30m']) {
    expect(() => cronTiming('cron', bad, NOW)).toThrow(/a "cron" job takes 5 fields/);
  }
});

test('at: a future ISO time or a delay, on a whole second', () => {
  expect(cronTiming('at', '10m', NOW)).toEqual({
    kind: 'at',
    atMs: Date.parse('2026-12-04T10:10:01.000Z'),
  });
  expect(cronTiming('at', '2026-12-05T09:00:00Z', NOW)).toEqual({
    kind: 'at',
    atMs: Date.parse('2026-12-05T09:00:00Z'),
  });
  expect(cronTiming('at', '2026-12-05T10:00:00+01:00', NOW)).toEqual({
    kind: 'at',
    atMs: Date.parse('2026-12-05T09:00:00Z'),
  });
  for (const bad of ['2020-01-01T00:00:00Z', 'tomorrow', '2026-12-05', '2026-13-45T99:00:00Z']) {
    expect(() => cronTiming('at', bad, NOW)).toThrow(/an "at" job takes a future ISO 8601 time/);
  }
});
