"""Unit tests of filter.py, run natively: `python3 test_filter.py`.

componentize-py generates the bindings (`wit_world`, `componentize_py_types`)
from ../../wit into a temporary folder first, as the build does; only the
host calls (none here) need the component.
"""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def setUpModule():
    global bindings, filter_module, api, types, Err
    bindings = tempfile.TemporaryDirectory()
    subprocess.run(
        [sys.executable, "-c", "import sys, componentize_py; sys.exit(componentize_py.script())",
         "--wit-path", os.path.join(HERE, "..", "..", "wit"), "--world", "request-filter", "bindings", bindings.name],
        check=True,
    )
    sys.path[:0] = [bindings.name, HERE]
    import filter as filter_module
    from componentize_py_types import Err
    from wit_world.exports import filter as api
    from wit_world.imports import types


def tearDownModule():
    bindings.cleanup()


def request(body, content_type=None):
    headers = [("content-type", content_type)] if content_type else []
    return api.IncomingRequest(method="POST", path="/", query="", headers=headers, body=body, request_context=None)


class FilterTest(unittest.TestCase):
    def mapped(self, body, content_type=None):
        return filter_module.Filter().filter(request(body, content_type))

    def refusal(self, body, content_type=None):
        with self.assertRaises(Err) as raised:
            self.mapped(body, content_type)
        refusal = raised.exception.value
        self.assertIsInstance(refusal, api.Refusal)
        return refusal.status, refusal.error.code, refusal.error.message

    def test_the_body_is_the_user_message(self):
        mapped = self.mapped(b"What is Lambda response streaming?\n", "text/plain; charset=utf-8")
        self.assertEqual(mapped.messages, [types.ModelMessage(types.Role.USER, [types.Content_Text("What is Lambda response streaming?")])])
        self.assertEqual((mapped.system, mapped.user_id, mapped.session_id, mapped.model, mapped.config, mapped.chain), (None,) * 6)

    def test_keeps_inner_lines_and_drops_trailing_breaks_and_a_bom(self):
        self.assertEqual(self.mapped("\ufeffline one\r\n\nline 2 é\r\n\r\n".encode()).messages[0].content, "line one\r\n\nline 2 é")
        self.assertEqual(self.mapped(b"  indented  ").messages[0].content, "  indented  ")

    def test_plain_none_and_octet_stream_are_fine(self):
        for content_type in (None, "text/plain", "TEXT/PLAIN;charset=UTF-8", "application/octet-stream", "application/x-www-form-urlencoded"):
            self.assertEqual(self.mapped(b"hi", content_type).messages[0].content, "hi", content_type)

    def test_refuses_json_and_multipart(self):
        for content_type in ("application/json", "Application/JSON; charset=utf-8", "application/ld+json",
                             "multipart/form-data; boundary=x"):
            status, code, message = self.refusal(b'{"prompt":"hi"}', content_type)
            self.assertEqual((status, code), (415, "unsupported_media_type"), content_type)
            self.assertIn("text/plain", message)

    def test_refuses_an_empty_body(self):
        for body in (b"", b"\n", b"\r\n\r\n", b"   \n"):
            self.assertEqual(self.refusal(body)[:2], (400, "invalid_request"), body)

    def test_refuses_a_body_that_is_not_utf8(self):
        status, code, message = self.refusal(b"caf\xe9", "text/plain")
        self.assertEqual((status, code), (400, "invalid_request"))
        self.assertIn("not UTF-8", message)


if __name__ == "__main__":
    unittest.main()
