import {
  ChannelPacer,
  registerChatMethods,
  type ChatMethodsDeps,
} from '../../gateway/methods/chat';
import { GatewayError, GatewayMethods, type GatewayCaller } from '../../gateway/protocol';

const ROOM = '!room:example.org';
const caller: GatewayCaller = {
  role: 'remote',
  subject: 'token:t1',
  auditId: 'req_1',
  address: '10.0.0.2',
};

function setup(overrides: Partial<ChatMethodsDeps> = {}) {
  const sends: { roomId: string; body: string; key?: string; threadId?: string }[] = [];
  const policy: { kind: string; detail: string }[] = [];
  let clock = 1_000_000;
  const deps: ChatMethodsDeps = {
    matrixReady: () => true,
    roomTrusted: (roomId) => roomId === ROOM,
    proactiveDisabled: async () => false,
    recordPolicy: (e) => policy.push(e),
    pacer: new ChannelPacer(2, () => clock),
    send: async (roomId, body, key, threadId) => {
      sends.push({ roomId, body, key, threadId });
      return { event_id: `$e${sends.length}`, room_id: roomId };
    },
    ...overrides,
  };
  const methods = new GatewayMethods();
  registerChatMethods(methods, deps);
  const send = (params: unknown) => methods.get('chat.send')!(params, caller);
  return { send, sends, policy, tick: (ms: number) => (clock += ms) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).code;
  }
  throw new Error('expected a GatewayError');
}

describe('chat.send', () => {
  it('sends into a trusted room and answers with the event id', async () => {
    const { send, sends } = setup();
    await expect(send({ channelId: ROOM, text: 'hello', threadId: '$root' })).resolves.toEqual({
      delivered: true,
      channelId: ROOM,
      eventId: '$e1',
    });
    expect(sends).toEqual([{ roomId: ROOM, body: 'hello', key: undefined, threadId: '$root' }]);
  });

  it('scopes an idempotency key to its caller', async () => {
    const { send, sends } = setup();
    await send({ channelId: ROOM, text: 'once', idempotencyKey: 'k-1' });
    expect(sends[0]!.key).toBe('gw-token:t1-k-1');
  });

  it('refuses bad params, untrusted rooms and sends while Matrix is down', async () => {
    const { send } = setup();
    expect(await codeOf(send({ channelId: 'room', text: 'x' }))).toBe('BAD_REQUEST');
    expect(await codeOf(send({ channelId: ROOM, text: '' }))).toBe('BAD_REQUEST');
    expect(await codeOf(send({ channelId: ROOM }))).toBe('BAD_REQUEST');
    expect(await codeOf(send({ channelId: ROOM, text: 'x', extra: 1 }))).toBe('BAD_REQUEST');
    expect(await codeOf(send({ channelId: '!other:example.org', text: 'x' }))).toBe('FORBIDDEN');
    const down = setup({ matrixReady: () => false });
    expect(await codeOf(down.send({ channelId: ROOM, text: 'x' }))).toBe('RUN_UNAVAILABLE');
  });

  it('refuses proactive sends during an incident and logs the refusal', async () => {
    const { send, sends, policy } = setup({ proactiveDisabled: async () => true });
    expect(await codeOf(send({ channelId: ROOM, text: 'hi', proactive: true }))).toBe('FORBIDDEN');
    expect(policy).toEqual([{ kind: 'proactive_send_refused', detail: `token:t1 → ${ROOM}` }]);
    await expect(send({ channelId: ROOM, text: 'reply' })).resolves.toMatchObject({
      delivered: true,
    });
    expect(sends).toHaveLength(1);
  });

  it('paces a busy room, lets urgent sends through, and frees the room after a minute', async () => {
    const { send, sends, tick } = setup();
    await send({ channelId: ROOM, text: '1' });
    tick(1_000);
    await send({ channelId: ROOM, text: '2' });
    tick(1_000);
    await expect(send({ channelId: ROOM, text: '3' })).resolves.toEqual({
      delivered: false,
      reason: 'paced',
      retryAfterMs: 58_000,
    });
    await expect(send({ channelId: ROOM, text: 'urgent', urgent: true })).resolves.toMatchObject({
      delivered: true,
    });
    tick(58_000);
    await expect(send({ channelId: ROOM, text: '4' })).resolves.toMatchObject({ delivered: true });
    expect(sends.map((s) => s.body)).toEqual(['1', '2', 'urgent', '4']);
  });

  it('answers a failed send with INTERNAL and a reason, never a stack', async () => {
    const { send } = setup({
      send: async () => {
        throw new Error('Internal error: not logged in to Matrix');
      },
    });
    await expect(send({ channelId: ROOM, text: 'x' })).rejects.toThrow(
      'the message was not sent: not logged in to Matrix',
    );
  });
});
