// {{name}}: a streamhost transform in JavaScript. It upper-cases the text
// of the stream, passes every other event on as it came, and at the end adds
// a metadata event: how many text events it upper-cased. Change `push` and
// `finish` to make it yours; wit/plugin.wit is the contract.

class Transform {
  // The text events upper-cased so far.
  shouted = 0;

  // Called once per stream; the request's settings for this plugin come
  // from `settings()` of "streamhost:plugin/config@0.1.0" (JSON).
  static open(_context) {
    return new Transform();
  }

  // Undefined: not a formatter; the host (or a later plugin) encodes.
  contentType() {
    return undefined;
  }

  // Text comes in pieces as the model makes them: a word can be split
  // across two events, so keep what spans them (upper-casing needs none).
  push(events) {
    return events.map((event) => {
      if (event.tag !== "text") return event;
      this.shouted += 1;
      return { tag: "text", val: event.val.toUpperCase() };
    });
  }

  // At the end: anything held back, and closing events. They go after all
  // that push returned (in the fixture, after the model's end and usage),
  // through the next plugin's push: a formatter such as ndjson writes them
  // before its complete line. Each kind is { tag, val }: "status" (a string),
  // "metadata" (JSON text), "usage" ({ inputTokens, outputTokens, totalTokens,
  // latencyMs, cacheReadInputTokens, cacheWriteInputTokens }), "raw" (a
  // Uint8Array), "end" (the stop reason), "error" ({ code, message }).
  finish() {
    return [{ tag: "metadata", val: JSON.stringify({ shouted: this.shouted }) }];
  }
}

export const transformer = { Transform };
