// markdown-js: a streamhost formatter plugin in JavaScript. It turns the
// stream's Markdown into HTML fragments, each a complete element sent as
// soon as its line is complete, so a page can append them as they arrive:
// headings, paragraphs, list items (inside <ul>), fenced code blocks, and
// **strong**, *em* and `code` inside them. Built with componentize-js
// against ../../wit (see README.md).

import { settings } from "streamhost:plugin/config@0.1.0";

const encoder = new TextEncoder();

class Transform {
  // Text after the last newline: the line still being written.
  #pending = "";
  #inList = false;
  #inCode = false;
  #blockClass;

  constructor(blockClass) {
    this.#blockClass = blockClass;
  }

  static open(_context) {
    let options;
    try {
      options = JSON.parse(settings());
    } catch (error) {
      throw invalidConfig(`the settings are not JSON: ${error}`);
    }
    const blockClass = options.class;
    if (blockClass !== undefined && !/^[A-Za-z][\w-]*$/.test(blockClass)) {
      throw invalidConfig("`class` must be a CSS class name");
    }
    return new Transform(blockClass);
  }

  contentType() {
    return "text/html; charset=utf-8";
  }

  push(events) {
    const out = [];
    for (const event of events) {
      switch (event.tag) {
        case "text": {
          const lines = (this.#pending + event.val).split("\n");
          this.#pending = lines.pop();
          out.push(...lines.map((line) => this.#line(line)));
          break;
        }
        case "error":
          out.push(this.#flush() + `<p class="error">${escape(event.val.code)}: ${escape(event.val.message)}</p>\n`);
          break;
        case "raw":
          out.push(event.val);
          break;
        // Metadata, status, usage, the end and source frames are not page content.
      }
    }
    return out.filter((html) => html.length > 0).map(raw);
  }

  finish() {
    const html = this.#flush();
    return html ? [raw(html)] : [];
  }

  // Whatever is still open or unfinished, closed.
  #flush() {
    let html = this.#pending ? this.#line(this.#pending) : "";
    this.#pending = "";
    if (this.#inCode) {
      html += "</code></pre>\n";
      this.#inCode = false;
    }
    return html + this.#closeList();
  }

  #line(line) {
    if (line.startsWith("```")) {
      if (this.#inCode) {
        this.#inCode = false;
        return "</code></pre>\n";
      }
      this.#inCode = true;
      return this.#closeList() + `<pre${this.#attributes()}><code>`;
    }
    if (this.#inCode) {
      return escape(line) + "\n";
    }
    const item = /^\s*[-*] (.*)$/.exec(line);
    if (item) {
      const open = this.#inList ? "" : `<ul${this.#attributes()}>\n`;
      this.#inList = true;
      return `${open}<li>${inline(item[1])}</li>\n`;
    }
    const close = this.#closeList();
    const heading = /^(#{1,6}) (.*)$/.exec(line);
    if (heading) {
      const level = heading[1].length;
      return `${close}<h${level}${this.#attributes()}>${inline(heading[2])}</h${level}>\n`;
    }
    if (line.trim() === "") {
      return close;
    }
    return `${close}<p${this.#attributes()}>${inline(line)}</p>\n`;
  }

  #closeList() {
    if (!this.#inList) return "";
    this.#inList = false;
    return "</ul>\n";
  }

  #attributes() {
    return this.#blockClass ? ` class="${this.#blockClass}"` : "";
  }
}

function inline(text) {
  return escape(text)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>");
}

function escape(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function raw(html) {
  return { tag: "raw", val: typeof html === "string" ? encoder.encode(html) : html };
}

// A `result` error for the host: componentize-js returns a thrown value's
// `payload` as the `err` case.
function invalidConfig(message) {
  const error = new Error(message);
  error.payload = { code: "invalid_config", message };
  return error;
}

export const transformer = { Transform };
