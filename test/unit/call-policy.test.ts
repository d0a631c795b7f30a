import { roomVerdict, type RoomPolicy } from '../../services/call-policy';

const A = '!a:test.local';
const B = '!b:test.local';
const C = '!c:test.local';

const policy = (p: Partial<RoomPolicy> = {}): RoomPolicy => ({
  allowedRooms: [],
  blockedRooms: [],
  trustedRooms: [],
  emptyListAllowsAll: false,
  ...p,
});

const allowed = { allowed: true };
const notAllowed = { allowed: false, reason: 'room_not_allowed' };
const blocked = { allowed: false, reason: 'room_blocked' };

describe('roomVerdict', () => {
  test('every list empty: zero trust refuses every room, emptyListAllowsAll admits every room', () => {
    expect(roomVerdict(A, policy())).toEqual(notAllowed);
    expect(roomVerdict(A, policy({ emptyListAllowsAll: true }))).toEqual(allowed);
  });

  test('allowedRooms non-empty: only those, whatever emptyListAllowsAll says', () => {
    for (const emptyListAllowsAll of [false, true]) {
      const p = policy({ allowedRooms: [A, B], emptyListAllowsAll });
      expect(roomVerdict(A, p)).toEqual(allowed);
      expect(roomVerdict(B, p)).toEqual(allowed);
      expect(roomVerdict(C, p)).toEqual(notAllowed);
    }
  });

  test('allowedRooms wins over trustedRooms: a trusted room not in allowedRooms is refused', () => {
    const p = policy({ allowedRooms: [A], trustedRooms: [B] });
    expect(roomVerdict(A, p)).toEqual(allowed);
    expect(roomVerdict(B, p)).toEqual(notAllowed);
  });

  test('allowedRooms empty, trustedRooms non-empty: only the trusted rooms', () => {
    for (const emptyListAllowsAll of [false, true]) {
      const p = policy({ trustedRooms: [B], emptyListAllowsAll });
      expect(roomVerdict(B, p)).toEqual(allowed);
      expect(roomVerdict(A, p)).toEqual(notAllowed);
    }
  });

  test('blocked wins over every allow rule', () => {
    expect(roomVerdict(A, policy({ blockedRooms: [A], allowedRooms: [A] }))).toEqual(blocked);
    expect(roomVerdict(A, policy({ blockedRooms: [A], trustedRooms: [A] }))).toEqual(blocked);
    expect(roomVerdict(A, policy({ blockedRooms: [A], emptyListAllowsAll: true }))).toEqual(
      blocked,
    );
    // Blocked even where it would not have been allowed anyway: the reason is the block.
    expect(roomVerdict(A, policy({ blockedRooms: [A] }))).toEqual(blocked);
    // Other rooms are unaffected by the block list.
    expect(roomVerdict(B, policy({ blockedRooms: [A], allowedRooms: [A, B] }))).toEqual(allowed);
    expect(roomVerdict(B, policy({ blockedRooms: [A], emptyListAllowsAll: true }))).toEqual(
      allowed,
    );
  });

  test('room ids match exactly', () => {
    const p = policy({ allowedRooms: [A] });
    expect(roomVerdict(A.toUpperCase(), p)).toEqual(notAllowed);
    expect(roomVerdict(`${A} `, p)).toEqual(notAllowed);
    expect(roomVerdict('', p)).toEqual(notAllowed);
  });
});
