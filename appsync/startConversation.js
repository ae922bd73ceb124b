// Mutation.startConversation (APPSYNC_JS 1.0.0, on the function's AWS_LAMBDA
// data source). AppSync invokes the function asynchronously (Lambda's
// InvocationType Event): Lambda queues the event and answers 202 at once, so
// the mutation returns before the run starts and a run may outlast AppSync's
// 30-second resolver limit. The run's chunks come back through sendChunk.
import { util } from '@aws-appsync/utils';

export function request(ctx) {
  return {
    operation: 'Invoke',
    invocationType: 'Event',
    // The event a direct Lambda resolver receives (the resolver context), so
    // the function reads one shape whether this resolver or none sits in
    // front of it. The seed's own resolver sent ctx.arguments alone
    // ({ input: { conversationId, prompt } }); here that is event.arguments.
    payload: {
      arguments: ctx.arguments,
      identity: ctx.identity,
      source: ctx.source,
      request: ctx.request,
      prev: ctx.prev,
      info: ctx.info,
      stash: ctx.stash,
    },
  };
}

export function response(ctx) {
  // Only the invoke itself can fail here (throttled, no permission, payload
  // over Lambda's asynchronous limit); the run's own failures come later.
  if (ctx.error) {
    util.error(ctx.error.message, ctx.error.type);
  }
  return { conversationId: ctx.args.input.conversationId, status: 'STARTED' };
}
