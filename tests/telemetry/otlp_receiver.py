"""An OTLP/HTTP receiver on loopback, for tests: takes protobuf exports at
/v1/metrics and /v1/traces, decodes them with the OpenTelemetry protocol's
own messages (opentelemetry-proto), and appends each as one JSON line
({"signal": "metrics"|"traces", "request": <the request as JSON>}) to the
file named by its one argument. It prints its port on the first line of
stdout, then serves until it is killed."""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SIGNALS = {
    "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest,
                   trace_service_pb2.ExportTraceServiceResponse),
}
OUT = sys.argv[1]


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        signal = SIGNALS.get(self.path)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if signal is None or self.headers.get("content-type") != "application/x-protobuf":
            self.send_response(415 if signal else 404)
            self.end_headers()
            return
        name, request_type, response_type = signal
        request = request_type()
        request.ParseFromString(body)
        with open(OUT, "a") as out:
            out.write(json.dumps({"signal": name, "request": MessageToDict(request)}) + "\n")
        reply = response_type().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
