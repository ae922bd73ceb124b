// {{name}}: a streamhost transform in C. It upper-cases the text of the
// stream (ASCII letters), passes every other event on as it came, and at the
// end adds a metadata event: how many text events it upper-cased. Change the
// push and finish functions to make it yours; wit/plugin.wit is the contract.

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "transform.h"

typedef exports_streamhost_plugin_transformer_event_t event_t;
typedef exports_streamhost_plugin_transformer_list_event_t event_list_t;
typedef exports_streamhost_plugin_transformer_error_info_t error_info_t;

// One stream's state: a transform is opened per stream.
struct exports_streamhost_plugin_transformer_transform_t {
  unsigned shouted;  // the text events upper-cased so far
};

bool exports_streamhost_plugin_transformer_static_transform_open(
    exports_streamhost_plugin_transformer_stream_context_t *context,
    exports_streamhost_plugin_transformer_own_transform_t *ret, error_info_t *err) {
  (void)err;
  exports_streamhost_plugin_transformer_stream_context_free(context);
  struct exports_streamhost_plugin_transformer_transform_t *state = calloc(1, sizeof(*state));
  if (!state) abort();
  *ret = exports_streamhost_plugin_transformer_transform_new(state);
  return true;
}

// Not a formatter: no content type; the host (or a later plugin) encodes.
bool exports_streamhost_plugin_transformer_method_transform_content_type(
    exports_streamhost_plugin_transformer_borrow_transform_t self, transform_string_t *ret) {
  (void)self;
  (void)ret;
  return false;
}

// Each batch of events, as it comes; the list it returns goes on. The
// events are this function's to change and hand back. Text comes in pieces
// as the model makes them: a word can be split across two events, so keep
// what spans them (upper-casing needs none).
bool exports_streamhost_plugin_transformer_method_transform_push(
    exports_streamhost_plugin_transformer_borrow_transform_t self, event_list_t *events, event_list_t *ret,
    error_info_t *err) {
  (void)err;
  for (size_t i = 0; i < events->len; i++) {
    if (events->ptr[i].tag != STREAMHOST_PLUGIN_TYPES_EVENT_TEXT) continue;
    self->shouted++;
    transform_string_t *text = &events->ptr[i].val.text;
    for (size_t j = 0; j < text->len; j++) text->ptr[j] = (uint8_t)toupper(text->ptr[j]);
  }
  *ret = *events;
  return true;
}

// At the end: anything held back, and closing events. They go after all that
// push returned (in the fixture, after the model's end and usage), through the
// next plugin's push: a formatter such as ndjson writes them before its
// complete line. An event is a tag, STREAMHOST_PLUGIN_TYPES_EVENT_<KIND>, and
// its union member: STATUS .val.status, METADATA .val.metadata (JSON text)
// and END .val.end, each a transform_string_t; USAGE .val.usage
// (streamhost_plugin_types_usage_t); RAW .val.raw (transform_list_u8_t);
// ERROR .val.error (streamhost_plugin_types_error_info_t). The bindings free
// what finish returns: malloc the list and its strings (transform_string_dup,
// not transform_string_set).
bool exports_streamhost_plugin_transformer_method_transform_finish(
    exports_streamhost_plugin_transformer_borrow_transform_t self, event_list_t *ret, error_info_t *err) {
  (void)err;
  char json[32];
  snprintf(json, sizeof json, "{\"shouted\":%u}", self->shouted);
  event_t *metadata = malloc(sizeof *metadata);
  if (!metadata) abort();
  metadata->tag = STREAMHOST_PLUGIN_TYPES_EVENT_METADATA;
  transform_string_dup(&metadata->val.metadata, json);
  ret->ptr = metadata;
  ret->len = 1;
  return true;
}

void exports_streamhost_plugin_transformer_transform_destructor(
    struct exports_streamhost_plugin_transformer_transform_t *state) {
  free(state);
}
