// Seed 000's browser client, run under Node 20: the reader loop from the
// seed's "Handling Streaming Responses" section, unchanged in what matters:
//
//   const reader = response.body.getReader();
//   const decoder = new TextDecoder();
//   ... const chunk = decoder.decode(value);            // no {stream: true}
//   const messages = chunk.split('\n').filter(Boolean).map(JSON.parse);
//
// It assumes every read ends at a line boundary. Where the seed would throw
// (and stop), this counts the read as failed and goes on, so one run measures
// a whole stream.
//
//   node seed000-reader.mjs URL [JSON_BODY]
//
// Prints one JSON line: {"status", "reads", "failedReads", "lines",
// "bytes", "maxRead", "failed": [{"read", "bytes", "endsMidLine",
// "startsMidLine"}]}. `lines` counts the lines parsed by reads that did not
// fail. Exit code 0 whatever the count; 2 on a transport error.

const [url, body = '{"prompt":"hello"}'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node seed000-reader.mjs URL [JSON_BODY]');
  process.exit(64);
}

const summary = { status: 0, reads: 0, failedReads: 0, lines: 0, bytes: 0, maxRead: 0, failed: [] };
try {
  const response = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/json' },
  });
  summary.status = response.status;

  const reader = response.body.getReader();
  const decoder = new TextDecoder(); // as the seed: one decoder, decode() without {stream: true}
  let previousEndedMidLine = false;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    summary.reads += 1;
    summary.bytes += value.byteLength;
    summary.maxRead = Math.max(summary.maxRead, value.byteLength);
    const endsMidLine = value[value.byteLength - 1] !== 0x0a; // last byte is not '\n'

    const chunk = decoder.decode(value);
    try {
      // The seed's line, verbatim.
      const messages = chunk.split('\n').filter(Boolean).map(JSON.parse);
      summary.lines += messages.length;
    } catch {
      summary.failedReads += 1;
      summary.failed.push({
        read: summary.reads, // 1-based index of the read
        bytes: value.byteLength,
        endsMidLine,
        startsMidLine: previousEndedMidLine,
      });
    }
    previousEndedMidLine = endsMidLine;
  }
} catch (error) {
  summary.error = String(error?.cause ?? error);
  console.log(JSON.stringify(summary));
  process.exit(2);
}
console.log(JSON.stringify(summary));
