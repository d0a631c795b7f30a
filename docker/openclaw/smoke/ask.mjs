// Runs inside the OpenClaw container (scripts/openclaw-smoke.sh): waits until the gateway on
// 127.0.0.1:18789 answers GET /readyz with 200, then sends one question to its OpenAI-compatible
// POST /v1/chat/completions and prints one JSON line: the answer and the timings.
//   node ask.mjs "<question>" [--stream]
const base = process.env.OPENCLAW_GATEWAY ?? 'http://127.0.0.1:18789';
const question = process.argv[2] ?? 'What is the capital of France?';
const stream = process.argv.includes('--stream');
const readyTimeoutMs = Number(process.env.ASK_READY_TIMEOUT_MS ?? 120_000);
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitReady() {
  let last = '';
  while (Date.now() - started < readyTimeoutMs) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) return Date.now() - started;
      last = `${r.status} ${(await r.text()).slice(0, 200)}`;
    } catch (err) {
      last = String(err?.cause?.code ?? err);
    }
    await sleep(200);
  }
  throw new Error(`gateway not ready after ${readyTimeoutMs} ms (last: ${last})`);
}

async function ask() {
  const t0 = Date.now();
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'openclaw/default',
      stream,
      messages: [{ role: 'user', content: question }],
    }),
  });
  if (!stream) {
    const body = await r.json();
    if (r.status !== 200) throw new Error(`chat.completions ${r.status}: ${JSON.stringify(body)}`);
    return {
      ms: Date.now() - t0,
      answer: body.choices?.[0]?.message?.content ?? '',
      usage: body.usage,
    };
  }
  if (r.status !== 200) throw new Error(`chat.completions ${r.status}: ${await r.text()}`);
  let answer = '';
  let firstMs;
  let buf = '';
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const data = JSON.parse(line.slice(6));
        if (data.error) throw new Error(`stream error: ${JSON.stringify(data.error)}`);
        const piece = data.choices?.[0]?.delta?.content;
        if (piece) {
          firstMs ??= Date.now() - t0;
          answer += piece;
        }
      }
    }
  }
  return { ms: Date.now() - t0, first_token_ms: firstMs, answer };
}

try {
  const readyMs = await waitReady();
  const first = await ask();
  const second = await ask();
  console.log(JSON.stringify({ ok: true, question, stream, ready_ms: readyMs, first, second }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err?.message ?? err) }));
  process.exitCode = 1;
}
