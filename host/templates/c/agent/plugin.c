// {{name}}: a streamhost agent in C. It says it is thinking, asks the model
// with the conversation, and streams the answer downstream. Change the
// handle function to make it yours; wit/orchestration.wit is the contract.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static void emit_text(uint8_t tag, const char *text, size_t len) {
  streamhost_plugin_emit_event_t event = {.tag = tag};
  event.val.text.ptr = (uint8_t *)text;
  event.val.text.len = len;
  streamhost_plugin_emit_emit(&event);
}

bool exports_streamhost_plugin_handler_handle(exports_streamhost_plugin_handler_agent_request_t *request,
                                              agent_string_t *ret, exports_streamhost_plugin_handler_error_info_t *err) {
  char status[256];
  int written = snprintf(status, sizeof status, "%.*s is thinking", (int)request->agent.len, (const char *)request->agent.ptr);
  emit_text(STREAMHOST_PLUGIN_TYPES_EVENT_STATUS, status, (size_t)written < sizeof status ? (size_t)written : sizeof status - 1);

  // The conversation, each message one text block; the strings stay the request's.
  size_t count = request->messages.len;
  streamhost_plugin_model_model_message_t *messages = calloc(count ? count : 1, sizeof *messages);
  streamhost_plugin_model_content_t *blocks = calloc(count ? count : 1, sizeof *blocks);
  if (!messages || !blocks) abort();
  for (size_t i = 0; i < count; i++) {
    blocks[i].tag = STREAMHOST_PLUGIN_TYPES_CONTENT_TEXT;
    blocks[i].val.text = request->messages.ptr[i].content;
    messages[i].role = request->messages.ptr[i].role;
    messages[i].content.ptr = &blocks[i];
    messages[i].content.len = 1;
  }
  streamhost_plugin_model_model_request_t call = {0};
  call.system = request->system;
  call.messages.ptr = messages;
  call.messages.len = count;

  streamhost_plugin_model_own_model_stream_t stream;
  bool started = streamhost_plugin_model_start(&call, &stream, err);
  free(messages);
  free(blocks);
  if (!started) {
    exports_streamhost_plugin_handler_agent_request_free(request);
    return false;
  }
  agent_string_dup(ret, "end_turn");
  streamhost_plugin_model_borrow_model_stream_t reading = streamhost_plugin_model_borrow_model_stream(stream);
  bool ok = true;
  for (;;) {
    streamhost_plugin_model_option_model_event_t next;
    if (!streamhost_plugin_model_method_model_stream_next(reading, &next, err)) {
      ok = false;
      break;
    }
    if (!next.is_some) break;
    streamhost_plugin_model_model_event_t *event = &next.val;
    if (event->tag == STREAMHOST_PLUGIN_MODEL_MODEL_EVENT_TEXT) {
      emit_text(STREAMHOST_PLUGIN_TYPES_EVENT_TEXT, (const char *)event->val.text.ptr, event->val.text.len);
    } else if (event->tag == STREAMHOST_PLUGIN_MODEL_MODEL_EVENT_END) {
      agent_string_free(ret);
      agent_string_dup_n(ret, (const char *)event->val.end.ptr, event->val.end.len);
    } else if (event->tag == STREAMHOST_PLUGIN_MODEL_MODEL_EVENT_USAGE) {
      streamhost_plugin_emit_event_t usage = {.tag = STREAMHOST_PLUGIN_TYPES_EVENT_USAGE};
      usage.val.usage = event->val.usage;
      streamhost_plugin_emit_emit(&usage);
    }
    streamhost_plugin_model_model_event_free(event);
  }
  streamhost_plugin_model_model_stream_drop_own(stream);
  if (!ok) agent_string_free(ret);
  exports_streamhost_plugin_handler_agent_request_free(request);
  return ok;
}
