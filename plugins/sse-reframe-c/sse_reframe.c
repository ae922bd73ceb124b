// sse-reframe-c: a streamhost transform plugin in C. It re-frames an
// upstream's server-sent events byte by byte into canonical SSE: LF line
// ends (CRLF and CR become LF), comment lines (keep-alives such as
// ": ping") dropped, "field:value" written "field: value", and every event
// ended by exactly one blank line. Events may arrive cut anywhere: a line
// or an event split across frames is put back together. Built with clang
// for wasm32-wasi against bindings generated from ../../wit (see README.md).

#include <stdlib.h>
#include <string.h>

#include "transform.h"

typedef exports_streamhost_plugin_transformer_event_t event_t;
typedef exports_streamhost_plugin_transformer_list_event_t event_list_t;
typedef exports_streamhost_plugin_transformer_error_info_t error_info_t;

// A growable byte buffer.
typedef struct {
  uint8_t *ptr;
  size_t len;
  size_t cap;
} buffer_t;

static void buffer_push(buffer_t *buffer, const uint8_t *bytes, size_t len) {
  if (buffer->len + len > buffer->cap) {
    size_t cap = buffer->cap ? buffer->cap : 256;
    while (cap < buffer->len + len) cap *= 2;
    buffer->ptr = realloc(buffer->ptr, cap);
    if (!buffer->ptr) abort();
    buffer->cap = cap;
  }
  memcpy(buffer->ptr + buffer->len, bytes, len);
  buffer->len += len;
}

static void buffer_push_str(buffer_t *buffer, const char *text) {
  buffer_push(buffer, (const uint8_t *)text, strlen(text));
}

// The state of one stream.
struct exports_streamhost_plugin_transformer_transform_t {
  buffer_t line;     // the line being read, without its end
  buffer_t event;    // the current event's lines, re-written
  bool after_cr;     // the last byte was CR: a following LF is part of it
};

typedef struct exports_streamhost_plugin_transformer_transform_t state_t;

// A complete line: a blank one ends the event, a comment is dropped, a field
// is written "name: value".
static void end_line(state_t *state, buffer_t *out) {
  buffer_t *line = &state->line;
  if (line->len == 0) {
    if (state->event.len > 0) {
      buffer_push(out, state->event.ptr, state->event.len);
      buffer_push_str(out, "\n");
      state->event.len = 0;
    }
    return;
  }
  if (line->ptr[0] != ':') {
    uint8_t *colon = memchr(line->ptr, ':', line->len);
    if (colon) {
      size_t name_len = colon - line->ptr;
      size_t value_start = name_len + 1;
      if (value_start < line->len && line->ptr[value_start] == ' ') value_start++;
      buffer_push(&state->event, line->ptr, name_len);
      buffer_push_str(&state->event, ": ");
      buffer_push(&state->event, line->ptr + value_start, line->len - value_start);
    } else {
      buffer_push(&state->event, line->ptr, line->len);
    }
    buffer_push_str(&state->event, "\n");
  }
  line->len = 0;
}

static void feed(state_t *state, const uint8_t *bytes, size_t len, buffer_t *out) {
  for (size_t i = 0; i < len; i++) {
    uint8_t byte = bytes[i];
    bool after_cr = state->after_cr;
    state->after_cr = byte == '\r';
    if (byte == '\n' && after_cr) continue;  // the LF of a CRLF
    if (byte == '\n' || byte == '\r') {
      end_line(state, out);
    } else {
      buffer_push(&state->line, &byte, 1);
    }
  }
}

// An error event in SSE, its strings escaped for JSON.
static void push_json_string(buffer_t *out, transform_string_t *text) {
  buffer_push_str(out, "\"");
  for (size_t i = 0; i < text->len; i++) {
    uint8_t c = text->ptr[i];
    if (c == '"' || c == '\\') {
      uint8_t escaped[2] = {'\\', c};
      buffer_push(out, escaped, 2);
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      uint8_t escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buffer_push(out, escaped, 6);
    } else {
      buffer_push(out, &c, 1);
    }
  }
  buffer_push_str(out, "\"");
}

static void push_error(buffer_t *out, error_info_t *error) {
  buffer_push_str(out, "event: error\ndata: {\"code\":");
  push_json_string(out, &error->code);
  buffer_push_str(out, ",\"message\":");
  push_json_string(out, &error->message);
  buffer_push_str(out, "}\n\n");
}

// `out` as the list of events returned: one raw event, or none. The bytes
// are handed over; the bindings free them after the call.
static void take_output(buffer_t *out, event_list_t *ret) {
  if (out->len == 0) {
    free(out->ptr);
    ret->ptr = NULL;
    ret->len = 0;
    return;
  }
  ret->ptr = malloc(sizeof(event_t));
  if (!ret->ptr) abort();
  ret->len = 1;
  ret->ptr[0].tag = STREAMHOST_PLUGIN_TYPES_EVENT_RAW;
  ret->ptr[0].val.raw.ptr = out->ptr;
  ret->ptr[0].val.raw.len = out->len;
}

bool exports_streamhost_plugin_transformer_static_transform_open(
    exports_streamhost_plugin_transformer_stream_context_t *context,
    exports_streamhost_plugin_transformer_own_transform_t *ret, error_info_t *err) {
  (void)err;
  exports_streamhost_plugin_transformer_stream_context_free(context);
  state_t *state = calloc(1, sizeof(state_t));
  if (!state) abort();
  *ret = exports_streamhost_plugin_transformer_transform_new(state);
  return true;
}

bool exports_streamhost_plugin_transformer_method_transform_content_type(
    exports_streamhost_plugin_transformer_borrow_transform_t self, transform_string_t *ret) {
  (void)self;
  transform_string_dup(ret, "text/event-stream");
  return true;
}

bool exports_streamhost_plugin_transformer_method_transform_push(
    exports_streamhost_plugin_transformer_borrow_transform_t state, event_list_t *events, event_list_t *ret,
    error_info_t *err) {
  (void)err;
  buffer_t out = {0};
  for (size_t i = 0; i < events->len; i++) {
    event_t *event = &events->ptr[i];
    switch (event->tag) {
      case STREAMHOST_PLUGIN_TYPES_EVENT_FRAME:
        feed(state, event->val.frame.ptr, event->val.frame.len, &out);
        break;
      case STREAMHOST_PLUGIN_TYPES_EVENT_RAW:
        feed(state, event->val.raw.ptr, event->val.raw.len, &out);
        break;
      case STREAMHOST_PLUGIN_TYPES_EVENT_ERROR:
        push_error(&out, &event->val.error);
        break;
      default:
        // The events the host decoded from the frames: already in them.
        break;
    }
  }
  exports_streamhost_plugin_transformer_list_event_free(events);
  take_output(&out, ret);
  return true;
}

bool exports_streamhost_plugin_transformer_method_transform_finish(
    exports_streamhost_plugin_transformer_borrow_transform_t state, event_list_t *ret, error_info_t *err) {
  (void)err;
  buffer_t out = {0};
  // An unterminated last line and event are ended, not dropped.
  if (state->line.len > 0) end_line(state, &out);
  state->line.len = 0;
  end_line(state, &out);
  take_output(&out, ret);
  return true;
}

void exports_streamhost_plugin_transformer_transform_destructor(state_t *state) {
  free(state->line.ptr);
  free(state->event.ptr);
  free(state);
}
