// {{name}}: a streamhost transform in C. It upper-cases the text of the
// stream (ASCII letters) and passes every other event on as it came.
// Change the push function to make it yours; wit/plugin.wit is the contract.

#include <ctype.h>
#include <stdlib.h>

#include "transform.h"

typedef exports_streamhost_plugin_transformer_list_event_t event_list_t;
typedef exports_streamhost_plugin_transformer_error_info_t error_info_t;

// One stream's state: a transform is opened per stream. This one needs none.
struct exports_streamhost_plugin_transformer_transform_t {
  int unused;
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
// events are this function's to change and hand back.
bool exports_streamhost_plugin_transformer_method_transform_push(
    exports_streamhost_plugin_transformer_borrow_transform_t self, event_list_t *events, event_list_t *ret,
    error_info_t *err) {
  (void)self;
  (void)err;
  for (size_t i = 0; i < events->len; i++) {
    if (events->ptr[i].tag != STREAMHOST_PLUGIN_TYPES_EVENT_TEXT) continue;
    transform_string_t *text = &events->ptr[i].val.text;
    for (size_t j = 0; j < text->len; j++) text->ptr[j] = (uint8_t)toupper(text->ptr[j]);
  }
  *ret = *events;
  return true;
}

// At the end of the stream: nothing held back.
bool exports_streamhost_plugin_transformer_method_transform_finish(
    exports_streamhost_plugin_transformer_borrow_transform_t self, event_list_t *ret, error_info_t *err) {
  (void)self;
  (void)err;
  ret->ptr = NULL;
  ret->len = 0;
  return true;
}

void exports_streamhost_plugin_transformer_transform_destructor(
    struct exports_streamhost_plugin_transformer_transform_t *state) {
  free(state);
}
