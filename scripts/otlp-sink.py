#!/usr/bin/env python3
"""otlp-sink.py - an OTLP/HTTP receiver that accepts and discards traces.

For measuring what exporting costs the services (BENCHMARKS.md, "Tracing overhead") without a
collector: every POST to /v1/traces is read and answered 200 with an empty
ExportTraceServiceResponse, as a collector would. Prints requests and bytes received on exit.

    scripts/otlp-sink.py [PORT]        # default 4318, loopback only; Ctrl-C or SIGTERM stops it
"""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        print(f"otlp-sink: {received['requests']} export requests, {received['bytes']} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
