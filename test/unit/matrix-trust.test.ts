import { judge, senderMatches, serverOf } from '../../services/matrix-trust';

describe('sender patterns', () => {
  test.each([
    ['@alice:example.com', '@alice:example.com', true],
    ['@alice:example.com', '@bob:example.com', false],
    ['@alice:example.com', '*:example.com', true],
    ['@alice:example.com', '*@example.com', true],
    ['@alice:evil.example.com', '*:example.com', false],
    ['@alice:example.com.evil', '*:example.com', false],
    ['@alice:example.com:8448', '*:example.com', false],
    ['@alice:example.com:8448', '*:example.com:8448', true],
    ['not-an-id', '*:example.com', false],
  ])('%s vs %s → %s', (sender, pattern, expected) => {
    expect(senderMatches(sender, pattern)).toBe(expected);
  });

  test('serverOf', () => {
    expect(serverOf('@a:b.c')).toBe('b.c');
    expect(serverOf('@a:b.c:8448')).toBe('b.c:8448');
    expect(serverOf('a:b')).toBeNull();
  });
});

describe('judge', () => {
  const policy = {
    trustedSenders: ['@alice:x.org', '*:corp.example'],
    trustedRooms: ['!r1:x.org'],
    emptyListAllowsAll: false,
  };
  test('trusted sender in trusted room passes', () => {
    expect(judge(policy, '@alice:x.org', '!r1:x.org')).toEqual({ trusted: true });
    expect(judge(policy, '@eve:corp.example', '!r1:x.org')).toEqual({ trusted: true });
  });
  test('untrusted room is dropped before the sender is considered', () => {
    expect(judge(policy, '@alice:x.org', '!other:x.org')).toEqual({
      trusted: false,
      reason: 'untrusted_room',
    });
  });
  test('untrusted sender is dropped', () => {
    expect(judge(policy, '@mallory:x.org', '!r1:x.org')).toEqual({
      trusted: false,
      reason: 'untrusted_sender',
    });
  });
  test('empty lists mean what the setting says', () => {
    const empty = { trustedSenders: [], trustedRooms: [] };
    expect(judge({ ...empty, emptyListAllowsAll: false }, '@a:b', '!r:b').trusted).toBe(false);
    expect(judge({ ...empty, emptyListAllowsAll: true }, '@a:b', '!r:b').trusted).toBe(true);
    expect(
      judge(
        { trustedSenders: [], trustedRooms: ['!r:b'], emptyListAllowsAll: false },
        '@a:b',
        '!r:b',
      ),
    ).toEqual({
      trusted: false,
      reason: 'untrusted_sender',
    });
  });
});
