import { afterJoin, afterSyncFailure } from '../../machines/matrix-sync-owner';

const three = { hosts: ['a', 'b', 'c'], owner: 'b' };

describe('afterSyncFailure', () => {
  test('a silent host hands the sync to the next in join order, wrapping, and stays a candidate', () => {
    expect(afterSyncFailure(three, 'host_silent', 1)).toEqual({
      hosts: ['a', 'b', 'c'],
      owner: 'c',
      moved: true,
      retryInMs: 0,
    });
    expect(afterSyncFailure({ ...three, owner: 'c' }, 'host_silent', 1).owner).toBe('a');
  });

  test('a lone silent host keeps the sync: there is nobody to give it to', () => {
    expect(afterSyncFailure({ hosts: ['a'], owner: 'a' }, 'host_silent', 3)).toEqual({
      hosts: ['a'],
      owner: 'a',
      moved: false,
      retryInMs: 0,
    });
  });

  test('a host logged out of the account leaves the list; the next one takes over', () => {
    expect(afterSyncFailure(three, 'logged_out', 1)).toEqual({
      hosts: ['a', 'c'],
      owner: 'c',
      moved: true,
      retryInMs: 0,
    });
    expect(afterSyncFailure({ ...three, owner: 'c' }, 'logged_out', 1).owner).toBe('a');
    expect(afterSyncFailure({ hosts: ['a'], owner: 'a' }, 'logged_out', 1)).toEqual({
      hosts: [],
      owner: undefined,
      moved: false,
      retryInMs: 0,
    });
  });

  test('an interrupted call runs again at once on the same host', () => {
    expect(afterSyncFailure(three, 'interrupted', 4)).toEqual({
      ...three,
      moved: false,
      retryInMs: 0,
    });
  });

  test('homeserver failures stay on the host and back off, doubling from 0.5 s to 30 s', () => {
    const waits = [1, 2, 3, 4, 7, 8, 20].map((n) => afterSyncFailure(three, 'failed', n).retryInMs);
    expect(waits).toEqual([500, 1_000, 2_000, 4_000, 30_000, 30_000, 30_000]);
    expect(afterSyncFailure(three, 'failed', 2).owner).toBe('b');
  });
});

describe('afterJoin', () => {
  test('the first host to join owns the sync; later ones queue up once each', () => {
    let s = afterJoin({ hosts: [] }, 'a');
    expect(s).toEqual({ hosts: ['a'], owner: 'a' });
    s = afterJoin(s, 'b');
    s = afterJoin(s, 'a');
    expect(s).toEqual({ hosts: ['a', 'b'], owner: 'a' });
  });
});
