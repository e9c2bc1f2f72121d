#!/usr/bin/env python3
"""Raw HTTP over TLS against herald's console, for the tests of what the HTTPS front bounds:
a client that sends what no well-behaved client would (huge header lines, a head trickled byte
by byte, many held connections). Python's ssl module, standard library only; certificates are
not checked (the tests check the certificate elsewhere).

Reads a JSON job on stdin and prints one JSON line per connection on stdout:

    {"host": "127.0.0.1", "port": N, "connections": 1, "hold": false,
     "steps": [{"send": "text"}, {"repeat": ["text", count]}, {"sleep": seconds},
               {"trickle": ["text", seconds_between_bytes]}]}

    -> {"status": 431 or null, "head": "HTTP/1.1 431 ...", "body": "...",
        "elapsed": seconds from the first step to the answer, "error": "..." or null}

With "connections" > 1 the steps run on that many connections opened one after the other and
kept open ("hold": wait on each for an answer or a close, up to 3 s, after all are open), to
see which ones the server refuses. Stops by itself after --max-seconds.
"""

import json
import signal
import socket
import ssl
import sys
import time


def connect(host, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname="herald.test")


def read_answer(s, deadline):
    data = b""
    while time.time() < deadline:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    if len(body) >= int(line.split(b":")[1]):
                        return data
    return data


def run_steps(s, steps):
    for step in steps:
        if "send" in step:
            s.sendall(step["send"].encode("latin-1"))
        elif "repeat" in step:
            text, count = step["repeat"]
            block = (text * 4096).encode("latin-1")
            sent = 0
            while sent < count:
                n = min(4096, count - sent)
                s.sendall(block if n == 4096 else (text * n).encode("latin-1"))
                sent += n
        elif "sleep" in step:
            time.sleep(step["sleep"])
        elif "trickle" in step:
            text, gap = step["trickle"]
            for ch in text:
                s.sendall(ch.encode("latin-1"))
                time.sleep(gap)


def report(data, started, error):
    head, _, body = data.partition(b"\r\n\r\n")
    first = head.split(b"\r\n")[0].decode("latin-1") if head else ""
    status = None
    parts = first.split(" ")
    if len(parts) >= 2 and parts[1].isdigit():
        status = int(parts[1])
    return {
        "status": status,
        "head": head.decode("latin-1"),
        "body": body.decode("utf-8", "replace"),
        "elapsed": round(time.time() - started, 3),
        "error": error,
    }


def main():
    max_seconds = 120
    if "--max-seconds" in sys.argv:
        max_seconds = float(sys.argv[sys.argv.index("--max-seconds") + 1])
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(3))
    signal.alarm(int(max_seconds))
    job = json.load(sys.stdin)
    n = job.get("connections", 1)
    held = []
    for _ in range(n):
        started = time.time()
        try:
            s = connect(job["host"], job["port"])
        except (OSError, ssl.SSLError) as e:
            print(json.dumps(report(b"", started, "connect: %s" % e)), flush=True)
            continue
        error = None
        try:
            run_steps(s, job.get("steps", []))
        except (OSError, ssl.SSLError) as e:
            error = "send: %s" % e
        if job.get("hold"):
            held.append((s, started, error))
            continue
        data = read_answer(s, time.time() + 30)
        print(json.dumps(report(data, started, error)), flush=True)
        s.close()
    for s, started, error in held:
        data = read_answer(s, time.time() + 3)
        print(json.dumps(report(data, started, error)), flush=True)
        s.close()


if __name__ == "__main__":
    main()
