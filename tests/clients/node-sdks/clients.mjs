// The official Node clients against streamhost (tests/all/standard_apis.rs):
// the OpenAI Node SDK and the AI SDK's `streamText` on /v1/chat/completions,
// the AI SDK's chat transport and `readUIMessageStream` on the `ai-sdk-ui`
// formatter's stream, and `@ag-ui/client`'s HttpAgent on the `ag-ui`
// formatter's.
//
// Usage: node clients.mjs BASE_URL
// Prints one JSON object: each scenario's outcome, or what the client raised.
// The pipelines are the test's: `chat` (echo and `redact`, no formatter of
// its own) and `failing` (a transform that traps mid-stream).

import OpenAI from "openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { DefaultChatTransport, readUIMessageStream, streamText } from "ai";
import { HttpAgent } from "@ag-ui/client";

const BASE = process.argv[2];
const PROMPT = "Write to ada@example.com about the plan for the launch of the new product line";

const raised = (error) => ({ raised: error?.constructor?.name ?? String(error), status: error?.status, message: String(error?.message ?? error) });

async function openaiChatStream(model) {
  const client = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: "unused", maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: PROMPT }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta?.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
  }
  return { text, finish, usage };
}

async function aiSdkStreamText(model) {
  const streamhost = createOpenAICompatible({ name: "streamhost", baseURL: `${BASE}/v1`, includeUsage: true });
  const result = streamText({ model: streamhost(model), prompt: PROMPT, maxRetries: 0 });
  let text = "";
  const errors = [];
  for await (const part of result.fullStream) {
    if (part.type === "text-delta") text += part.text;
    if (part.type === "error") errors.push(String(part.error?.message ?? part.error));
  }
  if (errors.length > 0) return { text, errors };
  return { text, finishReason: await result.finishReason, usage: await result.usage };
}

// useChat's transport, its body prepared for the pipeline's JSON request.
async function aiSdkUiStream(pipeline) {
  const transport = new DefaultChatTransport({
    api: `${BASE}/${pipeline}?then=ai-sdk-ui`,
    prepareSendMessagesRequest: ({ messages }) => ({
      body: { prompt: messages.at(-1).parts.map((part) => part.text ?? "").join("") },
    }),
  });
  const chunks = await transport.sendMessages({
    chatId: "chat-1",
    messages: [{ id: "m1", role: "user", parts: [{ type: "text", text: PROMPT }] }],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  let last = null;
  const errors = [];
  for await (const message of readUIMessageStream({ stream: chunks, onError: (error) => errors.push(String(error)) })) {
    last = message;
  }
  const text = (last?.parts ?? []).filter((part) => part.type === "text").map((part) => part.text).join("");
  return { text, role: last?.role, errors };
}

// AG-UI's HttpAgent, its request made the pipeline's JSON body (the
// documented way: override `requestInit`).
class StreamhostAgent extends HttpAgent {
  requestInit(input) {
    const prompt = input.messages.at(-1).content;
    return {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ prompt }),
      signal: this.abortController.signal,
    };
  }
}

async function agUi(pipeline) {
  const agent = new StreamhostAgent({ url: `${BASE}/${pipeline}?then=ag-ui` });
  agent.messages = [{ id: "m1", role: "user", content: PROMPT }];
  const seen = [];
  const errors = [];
  const subscriber = {
    onEvent: ({ event }) => seen.push(event.type),
    onRunErrorEvent: ({ event }) => errors.push(`${event.code}: ${event.message}`),
  };
  try {
    const { newMessages } = await agent.runAgent({}, subscriber);
    const text = newMessages.map((message) => message.content).join("");
    return { text, events: [...new Set(seen)], errors };
  } catch (error) {
    return { ...raised(error), events: [...new Set(seen)] };
  }
}

async function attempt(name, scenario, ...args) {
  try {
    results[name] = await scenario(...args);
  } catch (error) {
    results[name] = raised(error);
  }
}

const results = {};
await attempt("openai_chat_stream", openaiChatStream, "chat");
await attempt("openai_failing", openaiChatStream, "failing");
await attempt("openai_unknown_model", openaiChatStream, "no-such-pipeline");
await attempt("ai_sdk_stream_text", aiSdkStreamText, "chat");
await attempt("ai_sdk_failing", aiSdkStreamText, "failing");
await attempt("ai_sdk_ui", aiSdkUiStream, "chat");
await attempt("ag_ui", agUi, "chat");
await attempt("ag_ui_failing", agUi, "failing");
console.log(JSON.stringify(results));
