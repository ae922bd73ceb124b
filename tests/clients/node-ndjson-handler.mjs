// The Node baseline for seed 000: what a user would run instead of
// streamhost. An HTTP server whose handler is written the way the seed's
// Lambda handler is (`awslambda.streamifyResponse(eventHandler)`): the
// handler gets the event and a writable response stream, pulls tokens from
// an async generator and writes ONE NDJSON line per `write`, then `end()`s.
// The lines have the shapes of streamhost's `ndjson` plugin; the "model"
// echoes the prompt's words, one `{"type":"chunk","data":"word "}` per word.
//
//   node node-ndjson-handler.mjs [PORT=0] [DELAY_MS=0] [TOKENS=words]
//
// Prints `listening on http://127.0.0.1:PORT` once it accepts. Any POST path
// works; the body is `{"prompt": "..."}` (or the seed's `{"query": "..."}`).
// DELAY_MS is the pause before each token: a number of ms (0: no await at
//   all, so every write of the stream lands in one event-loop turn and Node
//   corks them into a few large writev calls), or `tick`: one event-loop turn
//   per token (setImmediate), as when tokens come from a network source, so
//   each line is its own writev.
// TOKENS is `words` ("word " per chunk) or `echo`: streamhost's echo model's
//   tokens (whitespace leads a token, at most 4 visible characters each), so
//   the body has the same lines as streamhost's `/ndjson`, byte for byte but
//   for the metadata and usage numbers.

import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const port = Number(process.argv[2] ?? 0);
const delay = process.argv[3] ?? '0';
const tokens = process.argv[4] ?? 'words';

// The model: an async generator of tokens, like the orchestrator's
// `response.output`.
async function* echoModel(prompt) {
  const pieces = tokens === 'echo'
    ? prompt.match(/\s*\S{1,4}/g) ?? []
    : prompt.split(/\s+/).filter(Boolean).map((word) => `${word} `);
  for (const piece of pieces) {
    if (delay === 'tick') await new Promise(setImmediate);
    else if (Number(delay) > 0) await sleep(Number(delay));
    yield piece;
  }
}

// The seed's eventHandler, with the orchestrator replaced by the echo model.
async function eventHandler(event, responseStream) {
  const started = Date.now();
  try {
    const body = JSON.parse(event.body || '{}');
    const prompt = String(body.prompt ?? body.query ?? '');
    responseStream.write(JSON.stringify({ type: 'metadata', data: { provider: 'echo', model: 'echo' } }) + '\n');
    let outputTokens = 0;
    for await (const chunk of echoModel(prompt)) {
      outputTokens += 1;
      responseStream.write(JSON.stringify({ type: 'chunk', data: chunk }) + '\n');
    }
    const usage = { inputTokens: outputTokens, outputTokens, totalTokens: 2 * outputTokens, latencyMs: Date.now() - started };
    responseStream.write(JSON.stringify({ type: 'complete', data: { stopReason: 'end_turn', usage } }) + '\n');
  } catch (error) {
    console.error('Error:', error);
    responseStream.write(JSON.stringify({ type: 'error', data: 'Internal Server Error' }) + '\n');
  } finally {
    responseStream.end();
  }
}

// A local stand-in for `awslambda.streamifyResponse`: the event is built
// from the request, the response stream is the HTTP response (chunked).
function streamifyResponse(handler) {
  return async (req, res) => {
    let body = '';
    for await (const piece of req) body += piece;
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' });
    await handler({ body, rawPath: req.url }, res, {});
  };
}

const server = http.createServer(streamifyResponse(eventHandler));
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
