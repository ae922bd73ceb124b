// {{name}}: a streamhost request filter in JavaScript. It takes a caller's
// {"question": "…"} and maps it to the host's request, or refuses a body
// without one. Change `filter` to make it yours; wit/inbound.wit is the
// contract.

const decoder = new TextDecoder();

function mapRequest(request) {
  let question;
  try {
    question = JSON.parse(decoder.decode(request.body) || "{}").question;
  } catch (_) {
    question = undefined;
  }
  if (typeof question !== "string") {
    const error = new Error("send {\"question\": \"…\"}");
    error.payload = { status: 400, error: { code: "missing_question", message: error.message }, headers: [] };
    throw error;
  }
  return { messages: [{ role: "user", content: [{ tag: "text", val: question }] }], tools: [] };
}

export const filter = { filter: mapRequest };
