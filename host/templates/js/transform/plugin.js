// {{name}}: a streamhost transform in JavaScript. It upper-cases the text
// of the stream and passes every other event on as it came. Change `push`
// to make it yours; wit/plugin.wit is the contract.

class Transform {
  // Called once per stream; the request's settings for this plugin come
  // from `settings()` of "streamhost:plugin/config@0.1.0" (JSON).
  static open(_context) {
    return new Transform();
  }

  // Undefined: not a formatter; the host (or a later plugin) encodes.
  contentType() {
    return undefined;
  }

  push(events) {
    return events.map((event) => (event.tag === "text" ? { tag: "text", val: event.val.toUpperCase() } : event));
  }

  finish() {
    return [];
  }
}

export const transformer = { Transform };
