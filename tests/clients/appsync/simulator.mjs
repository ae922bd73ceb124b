// A local stand-in for seed 003's AppSync API (appsync/schema.graphql), on
// Amplify's AppSync simulator: startConversation and sendChunk resolved as
// the deployed API resolves them (template.yaml, in VTL here: the simulator
// runs no APPSYNC_JS), startConversation invoking a local Lambda Invoke
// endpoint (streamhost, or a stub) in Event mode; also completeStream and
// sendError, which the seed resolves and the template does not.
//
//   node simulator.mjs --port P --api-key K \
//     --lambda-endpoint http://127.0.0.1:Q --function streamhost \
//     [--schema ../../../appsync/schema.graphql]
//
// GraphQL at http://127.0.0.1:P/graphql, subscriptions (AppSync's real-time
// protocol) at ws://127.0.0.1:P/graphql/realtime. Prints one line to stdout
// when ready; everything else goes to stderr.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import simulatorPackage from '@aws-amplify/amplify-appsync-simulator';

const { AmplifyAppSyncSimulator } = simulatorPackage;

// The simulator logs with console.log (subscription filter misses, data
// source errors); stdout is kept for the ready line a test waits for.
console.log = console.info = console.error;

const { values: options } = parseArgs({
  options: {
    port: { type: 'string' },
    'api-key': { type: 'string' },
    'lambda-endpoint': { type: 'string' },
    function: { type: 'string', default: 'streamhost' },
    schema: { type: 'string', default: fileURLToPath(new URL('../../../appsync/schema.graphql', import.meta.url)) },
  },
});
for (const required of ['port', 'api-key', 'lambda-endpoint']) {
  if (!options[required]) {
    console.error(`usage: node simulator.mjs --port P --api-key K --lambda-endpoint URL [--function NAME] [--schema PATH]; missing --${required}`);
    process.exit(64);
  }
}
const port = Number(options.port);
const invokeUrl = `${options['lambda-endpoint'].replace(/\/+$/, '')}/2015-03-31/functions/${encodeURIComponent(options.function)}/invocations`;

// Lambda's Invoke API, as AppSync calls it for invocationType Event: Lambda
// only queues the event (202, empty body), so the mutation's result does not
// wait for the run. The simulator's AWS_LAMBDA data source drops
// invocationType and hands us the payload alone, hence Event here.
async function invokeEvent(payload) {
  let response, body;
  try {
    response = await fetch(invokeUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Amz-Invocation-Type': 'Event' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(10_000),
    });
    body = await response.text();
  } catch (error) {
    // fetch's own message is only "fetch failed": name the endpoint and cause.
    throw new Error(`Lambda Invoke (Event) to ${invokeUrl} failed: ${error.cause?.code ?? error.cause?.message ?? error.message}`);
  }
  if (response.status !== 202) {
    throw new Error(`Lambda Invoke (Event) answered ${response.status}, not 202: ${body.slice(0, 500)}`);
  }
  return null; // AppSync's ctx.result for an Event invoke
}

// The event a direct Lambda resolver receives (the resolver context), as
// appsync/startConversation.js sends it. The simulator has no domain name
// and no pipeline, so request.domainName and prev are null.
const startConversationRequest = `{
  "version": "2018-05-29",
  "operation": "Invoke",
  "invocationType": "Event",
  "payload": {
    "arguments": $util.toJson($ctx.arguments),
    "identity": $util.toJson($ctx.identity),
    "source": $util.toJson($ctx.source),
    "request": { "headers": $util.toJson($ctx.request.headers), "domainName": null },
    "prev": null,
    "info": {
      "fieldName": $util.toJson($ctx.info.fieldName),
      "parentTypeName": "$ctx.info.parentTypeName",
      "variables": $util.toJson($ctx.info.variables),
      "selectionSetList": $util.toJson($ctx.info.selectionSetList),
      "selectionSetGraphQL": $util.toJson($ctx.info.selectionSetGraphQL)
    },
    "stash": $util.toJson($ctx.stash)
  }
}`;
const startConversationResponse = `#if($ctx.error)
  $util.error($ctx.error.message, $ctx.error.type)
#end
{ "conversationId": $util.toJson($ctx.args.input.conversationId), "status": "STARTED" }`;

// NONE data source: the result is the request's payload, which AppSync then
// publishes to the mutation's subscribers.
const nonePassThrough = (payload) => ({
  requestMappingTemplate: `{ "version": "2018-05-29", "payload": ${payload} }`,
  responseMappingTemplate: '$util.toJson($ctx.result)',
});

const simulator = new AmplifyAppSyncSimulator({ port });

// The simulator listens on every interface and has no option for it: bind
// loopback only, before start() calls listen(port).
const httpServer = simulator._server._httpServer;
const listen = httpServer.listen.bind(httpServer);
httpServer.listen = (listenPort) => listen(listenPort, '127.0.0.1');

simulator.init({
  appSync: {
    name: 'streamhost',
    apiKey: options['api-key'],
    defaultAuthenticationType: { authenticationType: 'API_KEY' },
    additionalAuthenticationProviders: [{ authenticationType: 'AWS_IAM' }],
  },
  schema: { path: options.schema, content: readFileSync(options.schema, 'utf8') },
  dataSources: [
    { type: 'AWS_LAMBDA', name: 'streamhost', invoke: invokeEvent },
    { type: 'NONE', name: 'none' },
  ],
  resolvers: [
    {
      kind: 'UNIT', typeName: 'Mutation', fieldName: 'startConversation', dataSourceName: 'streamhost',
      requestMappingTemplate: startConversationRequest, responseMappingTemplate: startConversationResponse,
    },
    { kind: 'UNIT', typeName: 'Mutation', fieldName: 'sendChunk', dataSourceName: 'none', ...nonePassThrough('$util.toJson($ctx.args)') },
    { kind: 'UNIT', typeName: 'Mutation', fieldName: 'completeStream', dataSourceName: 'none',
      ...nonePassThrough('{ "conversationId": $util.toJson($ctx.args.conversationId), "status": "COMPLETED" }') },
    { kind: 'UNIT', typeName: 'Mutation', fieldName: 'sendError', dataSourceName: 'none', ...nonePassThrough('$util.toJson($ctx.args)') },
  ],
});

// The simulator loses a subscription's arguments before its own filter sees
// them (asyncIterator(name) calls withFilter's result with no arguments;
// aws-amplify/amplify-cli#6026), so every onReceiveChunk subscriber would get
// every conversation's chunks. AppSync delivers a result only where each
// argument given equals the result's field of that name: filter so here.
const matches = (payload, args) =>
  payload != null && Object.entries(args ?? {}).every(([name, value]) => value == null || payload[name] === value);
for (const field of Object.values(simulator.schema.getSubscriptionType()?.getFields() ?? {})) {
  field.subscribe = (root, args) => {
    const events = simulator.pubsub.asyncIterator(field.name);
    return {
      async next() {
        for (;;) {
          const event = await events.next();
          if (event.done || matches(event.value, args)) return event;
        }
      },
      return: () => events.return(),
      throw: (error) => events.throw(error),
      [Symbol.asyncIterator]() { return this; },
    };
  };
}

// A start message the simulator cannot authorize (wrong key in its
// extensions.authorization) throws inside an unawaited promise, and the
// unhandled rejection ends the process. AppSync answers with an error frame
// for that subscription instead: do the same.
const realtime = simulator._server._realTimeSubscriptionServer.realtimeServer;
const onSubscribe = realtime.options.onSubscribeHandler;
realtime.options.onSubscribeHandler = async (...args) => {
  try {
    return await onSubscribe(...args);
  } catch (error) {
    const [errorType, ...message] = error.message.split(': ');
    return message.length
      ? { errors: [{ errorType, message: message.join(': ') }] }
      : { errors: [{ errorType: 'UnknownError', message: error.message }] };
  }
};
// Anything else of that kind (a start whose query does not parse) is logged,
// not fatal: one bad client must not end a test's simulator.
process.on('unhandledRejection', (error) => console.error('simulator: unhandled rejection:', error));

// One stderr line per mutation that passed auth and reached its data source
// (the simulator has no request hook; refused ones show in the caller's
// errors only). For IAM, the identity the simulator made up from the key id.
for (const [name, loader] of simulator.dataSources) {
  const load = loader.load.bind(loader);
  loader.load = (request, extra) => {
    const { context, info, args } = extra ?? {};
    console.error(JSON.stringify({
      mutation: info?.fieldName, dataSource: name, auth: context?.requestAuthorizationMode,
      iam: context?.iamToken, arguments: args,
    }));
    return load(request, extra);
  };
}

await simulator.start();
process.stdout.write(`appsync simulator listening on http://127.0.0.1:${port}\n`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    await simulator.stop();
    process.exit(0);
  });
}
