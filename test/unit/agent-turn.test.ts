// The agents' `agent.turn` (agent/methods.ts): a gateway turn's messages to the model (proxy mode,
// against the provider stub standing in for the proxy socket), to OpenClaw (one conversation per
// gateway session), or echoed (file mode); answered once per turn id; params checked.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentAudio } from '../../agent/audio';
import { Secret, type Credentials } from '../../agent/credentials';
import { Llm, type ChatMessage, type LlmAnswer } from '../../agent/llm';
import { agentMethods, echoTurn, type ConversationBackend } from '../../agent/methods';
import type { HandlerContext } from '../../agent/rpc-peer';
import { PROXY_PLACEHOLDER_TOKEN, proxyBaseUrl } from '../../formats/secrets-file';
import { ProviderStub } from '../support/provider-stub';

let dir: string;
let stub: ProviderStub;

const audio = {} as AgentAudio;
const ctx = {} as HandlerContext;
const MESSAGES = [
  { role: 'system', content: 'be brief' },
  { role: 'user', content: 'first question' },
  { role: 'assistant', content: 'first answer' },
  { role: 'user', content: 'second question' },
];

const proxyLlm = () =>
  new Llm({
    mode: 'proxy',
    keyId: 'k1',
    provider: 'openai',
    token: new Secret(PROXY_PLACEHOLDER_TOKEN),
    proxySocket: stub.socketPath!,
    baseUrl: proxyBaseUrl('/v1'),
  } as Credentials);
const fileLlm = () =>
  new Llm({ mode: 'file', keyId: 'k1', provider: 'openai', token: new Secret('sk-x') });
const turnId = () => `turn-${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-turn-'));
  stub = await ProviderStub.start({}, { socketPath: path.join(dir, 'provider.sock') });
});
afterAll(async () => {
  await stub.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  stub.reset();
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterEach(() => jest.restoreAllMocks());

test('proxy mode: one chat completion over all the messages', async () => {
  const turn = agentMethods(audio, proxyLlm()).get('agent.turn')!;
  const answer = await turn({ turn_id: turnId(), session_id: 's1', messages: MESSAGES }, ctx);
  expect(answer).toEqual({ text: 'tok0 tok1 tok2 ', model: 'gpt-4o-mini' });
  expect(stub.requests).toHaveLength(1);
  expect(JSON.parse(stub.requests[0]!.body).messages).toEqual(MESSAGES);
});

test('the same turn delivered twice asks the model once and answers the same', async () => {
  const turn = agentMethods(audio, proxyLlm()).get('agent.turn')!;
  const params = { turn_id: turnId(), session_id: 's1', messages: MESSAGES };
  const [a, b] = await Promise.all([turn(params, ctx), turn(params, ctx)]);
  const c = await turn(params, ctx);
  expect(a).toEqual(b);
  expect(c).toEqual(a);
  expect(stub.requests).toHaveLength(1);
});

test('file mode: the last user message echoed, no model call', async () => {
  const turn = agentMethods(audio, fileLlm()).get('agent.turn')!;
  const answer = await turn({ turn_id: turnId(), session_id: 's1', messages: MESSAGES }, ctx);
  expect(answer).toEqual({ text: 'echo: second question' });
  expect(stub.requests).toHaveLength(0);
  expect(echoTurn([{ role: 'assistant', content: 'only' }])).toEqual({ text: 'echo: only' });
});

test('with a conversation backend (OpenClaw): one conversation per gateway session', async () => {
  const seen: Array<{ messages: readonly ChatMessage[]; conversation: string }> = [];
  const backend: ConversationBackend = {
    model: 'openclaw:main',
    ask: async () => ({ answer: '', model: 'openclaw:main', ok: true }),
    chat: async (messages, conversation): Promise<LlmAnswer> => {
      seen.push({ messages, conversation });
      return { answer: `answer ${seen.length}`, model: 'openclaw:main', ok: true };
    },
  };
  const turn = agentMethods(audio, undefined, backend).get('agent.turn')!;
  await turn({ turn_id: turnId(), session_id: 'web-42', messages: MESSAGES }, ctx);
  const second = await turn(
    { turn_id: turnId(), session_id: 'web-42', messages: [{ role: 'tool', content: 'x' }] },
    ctx,
  );
  expect(second).toEqual({ text: 'answer 2', model: 'openclaw:main' });
  expect(seen.map((s) => s.conversation)).toEqual(['session:web-42', 'session:web-42']);
  // A role the model does not know is read as the user's.
  expect(seen[1]!.messages).toEqual([{ role: 'user', content: 'x' }]);
});

test('bad params are refused with -32602', async () => {
  const turn = agentMethods(audio, fileLlm()).get('agent.turn')!;
  for (const params of [
    { session_id: 's', messages: MESSAGES },
    { turn_id: 'a b', session_id: 's', messages: MESSAGES },
    { turn_id: 't', messages: MESSAGES },
    { turn_id: 't', session_id: 's', messages: [] },
    { turn_id: 't', session_id: 's', messages: [{ role: 'user' }] },
  ]) {
    await expect(Promise.resolve().then(() => turn(params, ctx))).rejects.toMatchObject({
      code: -32602,
    });
  }
});

test('an agent without a model or backend (unusable secrets) does not offer agent.turn', () => {
  expect(agentMethods(audio).has('agent.turn')).toBe(false);
});

test('a failed model call is answered but not kept: the next delivery asks again', async () => {
  const turn = agentMethods(audio, proxyLlm()).get('agent.turn')!;
  const params = { turn_id: turnId(), session_id: 's1', messages: MESSAGES };
  stub.options = { ...stub.options, error: { status: 503, message: 'overloaded' } };
  const failed = (await turn(params, ctx)) as { text: string };
  expect(failed.text).toContain('model error (503)');
  stub.options = { ...stub.options, error: undefined };
  const answered = await turn(params, ctx);
  expect(answered).toEqual({ text: 'tok0 tok1 tok2 ', model: 'gpt-4o-mini' });
  expect(stub.requests).toHaveLength(2);
});
