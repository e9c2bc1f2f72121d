#!/usr/bin/env python3
"""A webhook receiver for herald's reply-processing tests: the application's end of
`replies.webhook_url`, written apart from herald (Python's http.server, standard library only).

Every request is appended to --log as one JSON line, before it is answered:

    {"n", "time", "method", "path", "headers": {lower-case name: value},
     "header_list": [[name, value], ...] as sent, "body": raw text, "signature_ok": bool,
     "answer": what it is about to do}

`signature_ok` says whether `X-Herald-Signature` is `sha256=<hex HMAC-SHA256 of the raw body,
keyed with --secret>` (compared in constant time); a request without a good one is answered 401
whatever the mode.

What it answers is its mode: the first line of --mode-file if that file exists and has one, else
--mode (default 204). When the file holds more than one line, each request uses up the first line
(the file is rewritten without it), so "500\\n204\\n" fails the next request and then recovers; the
last line stays. A test switches modes at runtime by writing the file (write a temporary file and
rename it into place). Modes:

    204, 500, 404, 410, ...   answer that status (with an empty body)
    drop                      read the request, then close the connection without answering
    hold SECONDS [STATUS]     log the request, wait SECONDS, then answer STATUS (default 204)
    info CODE [STATUS]        an interim 1xx answer CODE (100, 103 Early Hints) first, then
                              STATUS (default 204)

It listens on 127.0.0.1:--port (0: any free port), over HTTPS with --tls-cert and --tls-key, writes the port it got to --ready-file (renamed
into place), serves each request on a thread of its own, and stops on SIGTERM/SIGINT or by itself
after --max-seconds.

    webhook.py --port 0 --secret S --log hooks.jsonl --ready-file port --mode-file mode \\
        --max-seconds 120
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNT = [0]


def write_atomically(path, text):
    tmp = os.path.join(os.path.dirname(path) or ".", "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def next_mode(args):
    """The mode for this request; uses up the mode file's first line when more follow."""
    path = args.mode_file
    if not path or not os.path.exists(path):
        return args.mode
    with open(path) as f:
        lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    if not lines:
        return args.mode
    if len(lines) > 1:
        write_atomically(path, "\n".join(lines[1:]) + "\n")
    return lines[0]


def make_handler(args):
    secret = args.secret.encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "herald-test-webhook/1"

        def answer(self, code):
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            got = self.headers.get("X-Herald-Signature", "")
            want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            signature_ok = hmac.compare_digest(got.encode(), want.encode())
            with LOCK:
                mode = next_mode(args) if signature_ok else "401"
                COUNT[0] += 1
                entry = {
                    "n": COUNT[0],
                    "time": time.time(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "header_list": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("utf-8", "replace"),
                    "signature_ok": signature_ok,
                    "answer": mode,
                }
                with open(args.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                    f.flush()
            words = mode.split()
            if words[0] == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            info = None
            if words[0] == "hold":
                time.sleep(float(words[1]))
                code = int(words[2]) if len(words) > 2 else 204
            elif words[0] == "info":
                info = int(words[1])
                code = int(words[2]) if len(words) > 2 else 204
            else:
                code = int(words[0])
            try:
                if info is not None:
                    # An interim answer first (RFC 9110 §15.2), as a server sending Early Hints
                    # does; the client must read on to the final one.
                    self.wfile.write(
                        b"HTTP/1.1 %d %s\r\nLink: </hook.css>; rel=preload\r\n\r\n"
                        % (info, self.responses.get(info, ("Info",))[0].encode())
                    )
                    self.wfile.flush()
                self.answer(code)
            except OSError:
                pass  # the client is gone (killed while we held the answer)

        def do_GET(self):
            self.answer(405)

        def log_message(self, fmt, *a):
            sys.stderr.write("webhook: %s\n" % (fmt % a))
            sys.stderr.flush()

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--secret", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--mode-file", default="")
    p.add_argument("--mode", default="204")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", default="")
    args = p.parse_args()

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args))
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    # Self-stop: no receiver outlives its test, even if the test binary is killed.
    timer = threading.Timer(args.max_seconds, lambda: os._exit(3))
    timer.daemon = True
    timer.start()

    def stop(*_):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_atomically(args.ready_file, "%d\n" % server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
