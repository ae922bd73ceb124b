"""The playground page in a real browser: Debian's Chromium, driven by
Playwright for Python (no browser download: `executable_path`).

Usage: playground.py BASE_URL UPLOAD_WASM SCREENSHOT

Checks, against a `streamhost serve --playground-upload` whose echo model
runs at a model's pace and whose plugins include `ndjson` and `trap`:
1. text appears in the page while the stream is still running;
2. an error event mid-stream is shown as the error;
3. an uploaded `.wasm` is listed, selected and served at once.
Then writes a screenshot. Exits non-zero, with the reason, on a failure.
"""

import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

base, upload_wasm, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def status(page):
    return page.text_content("#status")


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(base + "/")
    expect(page.locator("#catalog .item[data-name=ndjson]")).to_be_visible()
    expect(page.locator("#catalog .item[data-name=ndjson]")).to_contain_text("application/x-ndjson")

    # 1. The stream arrives live: the first text is shown while the status
    # still says the stream runs.
    prompt = "one two three four five six seven eight nine ten"
    page.fill("#target", "ndjson")
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_selector("#events tr[data-type=chunk]")
    assert status(page) == "streaming", f"the first text came when the status was {status(page)!r}"
    shown_while_streaming = page.locator("#events tr[data-type=chunk]").count()
    expect(page.locator("#status")).to_have_text("done", timeout=30000)
    chunks = page.locator("#events tr[data-type=chunk] td:nth-child(3)").all_text_contents()
    assert "".join(chunks) == prompt, chunks
    assert shown_while_streaming < len(chunks), (shown_while_streaming, len(chunks))
    times = [int(t) for t in page.locator("#events tr[data-type=chunk] td.t").all_text_contents()]
    assert times == sorted(times) and times[-1] > times[0], f"arrival times, in ms: {times}"
    expect(page.locator("#metadata")).to_contain_text('"provider":"echo"')
    expect(page.locator("#raw")).to_contain_text('{"type":"chunk","data":"one"}')

    # 1b. The summary line merges every metadata event: a routed stream's
    # router names the agent, then the agent's model names the provider.
    page.fill("#target", "desk")
    page.fill("#prompt", "a")  # the echo model answers the router "a": agent a
    page.click("#send")
    expect(page.locator("#status")).to_have_text("done", timeout=30000)
    expect(page.locator("#metadata")).to_contain_text('"agent":"a"')
    expect(page.locator("#metadata")).to_contain_text('"provider":"echo"')

    # 2. A plugin that traps mid-stream: the error event is shown.
    page.check("input[name=mode][value=raw]")
    page.fill("#target", "trap?then=ndjson")
    page.fill("#prompt", json.dumps({"prompt": "Hi there friend", "config": {"trap": {"trapAt": 3}}}))
    page.click("#send")
    page.wait_for_selector("#events tr[data-type=error]", timeout=30000)
    expect(page.locator("#error")).to_contain_text("plugin_trapped")
    expect(page.locator("#status")).to_have_text("ended with an error", timeout=30000)

    # 3. An upload is checked, listed, selected and served at once.
    page.fill("#upload-name", "uploaded")
    page.set_input_files("#upload-file", upload_wasm)
    page.click("#upload")
    expect(page.locator("#upload-status")).to_contain_text("uploaded uploaded (transform)")
    expect(page.locator("#catalog .item[data-name=uploaded]")).to_be_visible()
    assert page.input_value("#target") == "uploaded"
    page.check("input[name=mode][value=prompt]")
    page.fill("#prompt", "served at once")
    page.click("#send")
    expect(page.locator("#status")).to_have_text("done", timeout=30000)
    expect(page.locator("#response-head")).to_contain_text("200 text/event-stream")
    texts = page.locator("#events tr[data-type=text] td:nth-child(3)").all_text_contents()
    assert "".join(json.loads(text)["text"] for text in texts) == "served at once", texts

    # For the docs: the first stream again, finished.
    page.check("input[name=mode][value=prompt]")
    page.fill("#target", "ndjson")
    page.fill("#prompt", "Tell me about streams.")
    page.click("#send")
    expect(page.locator("#status")).to_have_text("done", timeout=30000)
    page.screenshot(path=screenshot, full_page=True)
    browser.close()
print("playground: live text, the error event and the upload all shown")
