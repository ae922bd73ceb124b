// {{name}}: a streamhost router in C. It picks the agent whose name the
// last message mentions (ASCII, any case), else the pipeline's first agent.
// Change the select function to make it yours; wit/orchestration.wit is the
// contract.

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

// Whether `name` appears in `text`, ignoring ASCII case.
static bool mentions(const router_string_t *text, const router_string_t *name) {
  if (name->len == 0 || name->len > text->len) return false;
  for (size_t at = 0; at + name->len <= text->len; at++) {
    size_t i = 0;
    while (i < name->len && tolower(text->ptr[at + i]) == tolower(name->ptr[i])) i++;
    if (i == name->len) return true;
  }
  return false;
}

bool exports_streamhost_plugin_selector_select(exports_streamhost_plugin_selector_route_request_t *request,
                                                exports_streamhost_plugin_selector_choice_t *ret,
                                                exports_streamhost_plugin_selector_error_info_t *err) {
  bool found = false;
  if (request->agents.len == 0) {
    router_string_dup(&err->code, "no_agents");
    router_string_dup(&err->message, "the pipeline has no agents to choose from");
    exports_streamhost_plugin_selector_route_request_free(request);
    return false;
  }
  const router_string_t *last = request->messages.len ? &request->messages.ptr[request->messages.len - 1].content : NULL;
  const router_string_t *chosen = &request->agents.ptr[0].name;
  for (size_t i = 0; last && i < request->agents.len; i++) {
    if (mentions(last, &request->agents.ptr[i].name)) {
      chosen = &request->agents.ptr[i].name;
      found = true;
      break;
    }
  }
  router_string_dup_n(&ret->agent, (const char *)chosen->ptr, chosen->len);
  ret->confidence = found ? 1.0 : 0.5;
  router_string_dup(&ret->reason, found ? "the message names it" : "the first agent, by default");
  exports_streamhost_plugin_selector_route_request_free(request);
  return true;
}
