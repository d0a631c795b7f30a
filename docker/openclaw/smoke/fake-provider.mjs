// A fake OpenAI-compatible provider for the OpenClaw smoke run (scripts/openclaw-smoke.sh): serves
// POST /v1/chat/completions (streamed or not) and GET /v1/models on 127.0.0.1:8089 inside the
// container, where the real run has the reference agent's forwarder to the bridge's provider proxy.
// Its answer quotes the last user message, so a caller can tell the answer came from here. Each
// request is summarised as one JSON line on stdout (sizes and names, never the API key itself).
import http from 'node:http';

const port = Number(process.env.FAKE_PROVIDER_PORT ?? 8089);
const host = process.env.FAKE_PROVIDER_HOST ?? '127.0.0.1';

function text(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

// The question the person asked: OpenClaw sends it as a user message prefixed with a timestamp
// ("[Fri 2026-12-04 03:54 UTC] …") and followed by a "Runtime: …" paragraph, then a second user
// message of internal context (<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>), which is skipped here.
function question(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== 'user') continue;
    const t = text(m.content);
    if (t.includes('BEGIN_OPENCLAW_INTERNAL_CONTEXT')) continue;
    return t
      .split(/\n\s*\nRuntime: /)[0]
      .replace(/^\[[^\]]*\]\s*/, '')
      .trim();
  }
  return '';
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const started = Date.now();
    if (req.method === 'GET' && req.url?.startsWith('/v1/models')) {
      send(res, 200, {
        object: 'list',
        data: [{ id: 'gpt-4o-mini', object: 'model', owned_by: 'fake' }],
      });
      return;
    }
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/chat/completions')) {
      console.log(JSON.stringify({ fake_provider: 'unhandled', method: req.method, url: req.url }));
      send(res, 404, {
        error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' },
      });
      return;
    }
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      send(res, 400, { error: { message: 'invalid JSON', type: 'invalid_request_error' } });
      return;
    }
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const asked = question(messages);
    const answer = `The fake provider heard: ${asked.slice(0, 200)}`;
    const auth = req.headers.authorization ?? '';
    console.log(
      JSON.stringify({
        fake_provider: 'chat.completions',
        model: body.model,
        stream: body.stream === true,
        messages: messages.length,
        roles: messages.map((m) => m.role).join(','),
        system_chars: messages
          .filter((m) => m.role === 'system' || m.role === 'developer')
          .reduce((n, m) => n + JSON.stringify(m.content ?? '').length, 0),
        tools: Array.isArray(body.tools) ? body.tools.length : 0,
        request_bytes: raw.length,
        auth_is_placeholder: auth === 'Bearer armorclaw-proxy-placeholder',
        question_chars: asked.length,
      }),
    );
    const id = `chatcmpl-fake-${started}`;
    const created = Math.floor(started / 1000);
    const usage = {
      prompt_tokens: Math.ceil(raw.length / 4),
      completion_tokens: 12,
      total_tokens: Math.ceil(raw.length / 4) + 12,
    };
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta, finish = null, extra = {}) =>
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`,
        );
      chunk({ role: 'assistant', content: '' });
      for (const word of answer.split(/(?<= )/)) chunk({ content: word });
      chunk({}, 'stop');
      if (body.stream_options?.include_usage) {
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage })}\n\n`,
        );
      }
      res.end('data: [DONE]\n\n');
      return;
    }
    send(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: body.model,
      choices: [
        { index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' },
      ],
      usage,
    });
  });
});
server.listen(port, host, () =>
  console.log(JSON.stringify({ fake_provider: 'listening', host, port })),
);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
