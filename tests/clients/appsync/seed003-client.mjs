// Seed 003's test client (test/test.ts in the sample), its algorithm
// unchanged: subscribe to onReceiveChunk for a conversation id the client
// picks, then call startConversation, then print chunks as they arrive. The
// sample goes through Amplify's client; this speaks AppSync's real-time
// protocol itself (ws only), and waits for start_ack instead of the sample's
// fixed 2 s delay, so a test does not race the subscription.
//
//   node seed003-client.mjs --url http://127.0.0.1:P/graphql --api-key K \
//     --conversation-id ID --prompt "Tell me a joke" [--quiet-ms 3000]
//
// stdout, one JSON line each, written as it happens:
//   {"subscribed":true}
//   {"started":{"conversationId":...,"status":"STARTED"}}
//   {"chunk":{"conversationId":...,"chunk":...}}   (per chunk)
// A chunk may come before the started line: the run can publish before the
// mutation's answer gets back.
// Exit 0 once no chunk came for --quiet-ms after the start; 1 on an error
// frame, a GraphQL error or a lost connection (details on stderr).
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: options } = parseArgs({
  options: {
    url: { type: 'string' },
    'realtime-url': { type: 'string' },
    'api-key': { type: 'string' },
    'conversation-id': { type: 'string' },
    prompt: { type: 'string', default: 'Tell me a joke' },
    'quiet-ms': { type: 'string', default: '3000' },
  },
});
for (const required of ['url', 'api-key', 'conversation-id']) {
  if (!options[required]) {
    console.error(`usage: node seed003-client.mjs --url URL --api-key K --conversation-id ID [--prompt P] [--quiet-ms MS] [--realtime-url WS_URL]; missing --${required}`);
    process.exit(64);
  }
}
const graphqlUrl = new URL(options.url);
const apiKey = options['api-key'];
const conversationId = options['conversation-id'];
const quietMs = Number(options['quiet-ms']);

// AppSync's real-time endpoint is a sibling host (appsync-realtime-api) on
// wss; the simulator serves it on its own port under /graphql/realtime.
function realtimeUrl() {
  if (options['realtime-url']) return new URL(options['realtime-url']);
  const url = new URL(graphqlUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (url.hostname.includes('.appsync-api.')) {
    url.hostname = url.hostname.replace('.appsync-api.', '.appsync-realtime-api.');
  } else {
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/realtime`;
  }
  return url;
}

// API-key authorization, as AppSync wants it: the GraphQL endpoint's host
// (not the real-time one) and the key, base64 JSON in the connection URL
// and again, as an object, in each start message.
const authorization = { host: graphqlUrl.host, 'x-api-key': apiKey };
const base64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64');

// Lines go out with write(), which on Linux is synchronous for pipes and
// files: a reader sees each as soon as it happens, and exit() loses none.
const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
function fail(message, detail) {
  console.error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  process.exit(1);
}

const subscription = `subscription OnReceiveChunk($conversationId: ID!) {
  onReceiveChunk(conversationId: $conversationId) {
    conversationId
    chunk
  }
}`;
const startMutation = `mutation StartConversation($input: StartConversationInput!) {
  startConversation(input: $input) {
    conversationId
    status
  }
}`;

const url = realtimeUrl();
url.search = `header=${encodeURIComponent(base64(authorization))}&payload=${encodeURIComponent(base64({}))}`;
const socket = new WebSocket(url, 'graphql-ws');
const subscriptionId = randomUUID();
let quietTimer;
let finished = false;

// Nothing is started until the subscription is acknowledged, so a slow
// handshake must end the run rather than hang it.
const handshakeTimer = setTimeout(() => fail('no connection_ack/start_ack within 10 s'), 10_000);

socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
socket.on('error', (error) => fail(`websocket error: ${error.message}`));
// The simulator refuses a connection's header by closing (1002) without a
// frame, hence the phase in the message.
let phase = 'connection_ack';
socket.on('close', (code, reason) => {
  if (finished) process.exit(0);
  fail(`websocket closed (${code}${reason.length ? ` ${reason}` : ''}) while waiting for ${phase}`);
});

socket.on('message', async (raw) => {
  const message = JSON.parse(raw.toString());
  switch (message.type) {
    case 'connection_ack':
      phase = 'start_ack';
      socket.send(JSON.stringify({
        id: subscriptionId,
        type: 'start',
        payload: {
          data: JSON.stringify({ query: subscription, variables: { conversationId } }),
          extensions: { authorization },
        },
      }));
      return;
    case 'start_ack':
      clearTimeout(handshakeTimer);
      phase = 'the run to go quiet';
      emit({ subscribed: true });
      await start();
      return;
    case 'data':
      if (message.payload?.errors?.length) fail('subscription data with errors', message.payload);
      emit({ chunk: message.payload?.data?.onReceiveChunk ?? null });
      armQuietTimer();
      return;
    case 'ka':
      return;
    case 'complete':
      finish();
      return;
    default: // error, connection_error, anything unknown
      fail(`${message.type} frame`, message);
  }
});

async function start() {
  let body;
  try {
    const response = await fetch(graphqlUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify({
        query: startMutation,
        variables: { input: { prompt: options.prompt, conversationId } },
      }),
    });
    body = await response.json();
  } catch (error) {
    fail(`startConversation failed: ${error.message}`);
  }
  if (body.errors?.length || body.errorMessage || !body.data?.startConversation) {
    fail('startConversation answered with errors', body);
  }
  emit({ started: body.data.startConversation });
  armQuietTimer();
}

function armQuietTimer() {
  clearTimeout(quietTimer);
  quietTimer = setTimeout(finish, quietMs);
}

// Unsubscribe and close politely; the close event ends the process, or
// this timer does if the server never answers the close.
function finish() {
  finished = true;
  clearTimeout(quietTimer);
  socket.send(JSON.stringify({ id: subscriptionId, type: 'stop' }));
  socket.close(1000);
  setTimeout(() => process.exit(0), 1000).unref();
}
