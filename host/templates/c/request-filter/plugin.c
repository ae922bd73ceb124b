// {{name}}: a streamhost request filter in C. It takes a caller's
// {"question": "…"} and maps it to the host's request, or refuses a body
// without one. (A small scan for the one string field; a real filter would
// use a JSON parser.) Change the filter function to make it yours;
// wit/inbound.wit is the contract.

#include <stdlib.h>
#include <string.h>

#include "request_filter.h"

// The value of `"question": "…"` in `body` (no escapes), or false.
static bool find_question(const uint8_t *body, size_t len, const uint8_t **start, size_t *size) {
  const char key[] = "\"question\"";
  size_t key_len = sizeof key - 1;
  for (size_t at = 0; at + key_len <= len; at++) {
    if (memcmp(body + at, key, key_len) != 0) continue;
    size_t i = at + key_len;
    while (i < len && (body[i] == ' ' || body[i] == ':')) i++;
    if (i >= len || body[i] != '"') return false;
    size_t end = ++i;
    while (end < len && body[end] != '"') end++;
    if (end >= len) return false;
    *start = body + i;
    *size = end - i;
    return true;
  }
  return false;
}

bool exports_streamhost_plugin_filter_filter(exports_streamhost_plugin_filter_incoming_request_t *request,
                                             exports_streamhost_plugin_filter_pipeline_request_t *ret,
                                             exports_streamhost_plugin_filter_refusal_t *err) {
  const uint8_t *question;
  size_t size;
  bool found = find_question(request->body.ptr, request->body.len, &question, &size);
  if (!found) {
    exports_streamhost_plugin_filter_incoming_request_free(request);
    err->status = 400;
    request_filter_string_dup(&err->error.code, "missing_question");
    request_filter_string_dup(&err->error.message, "send {\"question\": \"…\"}");
    err->headers.ptr = NULL;
    err->headers.len = 0;
    return false;
  }
  memset(ret, 0, sizeof *ret);
  ret->messages.ptr = calloc(1, sizeof *ret->messages.ptr);
  if (!ret->messages.ptr) abort();
  ret->messages.len = 1;
  ret->messages.ptr[0].role = STREAMHOST_PLUGIN_TYPES_ROLE_USER;
  streamhost_plugin_types_list_content_t *content = &ret->messages.ptr[0].content;
  content->ptr = calloc(1, sizeof *content->ptr);
  if (!content->ptr) abort();
  content->len = 1;
  content->ptr[0].tag = STREAMHOST_PLUGIN_TYPES_CONTENT_TEXT;
  request_filter_string_dup_n(&content->ptr[0].val.text, (const char *)question, size);
  exports_streamhost_plugin_filter_incoming_request_free(request);
  return true;
}
