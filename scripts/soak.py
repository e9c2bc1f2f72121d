"""The crash loop (`make soak`): herald is killed with SIGKILL every few seconds for SOAK_SECONDS
(default 600) while SMTP clients send replies and the application queues notifications; then it
runs once more until everything is through, and the soak checks that

- every reply that got `250` reached the webhook, each message under one `X-Herald-Delivery` id
  (the same id repeated is allowed: a repeat after a crash; two ids for one message are not);
- every notification answered `202` was sent, and reached the smarthost.

Peers are not herald's: Python's smtplib sends, aiosmtpd is the smarthost, http.server the
webhook. Prints the counts; exits 1 on any violation.

Usage: python3 scripts/soak.py HERALD_BINARY [SECONDS]
"""
import http.server, json, os, random, shutil, signal, smtplib, subprocess
import sys, tempfile, threading, time

from benchlib import UnixHTTPConnection, free_port

SECRET = "soak-webhook-secret-0123456789"
herald_bin = os.path.abspath(sys.argv[1])
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
work = tempfile.mkdtemp(prefix="herald-soak-")
data = os.path.join(work, "data")
lock = threading.Lock()
deliveries = {}   # Message-ID of a reply -> set of X-Herald-Delivery ids
acked = set()     # Message-IDs that got 250
queued = {}       # notification id -> Message-ID, for those that got 202
smarthost_got = set()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        mid = (json.loads(body)["message_id"] or "").strip("<>")
        with lock:
            deliveries.setdefault(mid, set()).add(self.headers["X-Herald-Delivery"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class HookServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # herald killed in the middle of a request: expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Smarthost:
    async def handle_DATA(self, server, session, envelope):
        for line in envelope.content.decode("utf-8", "replace").splitlines():
            if line.lower().startswith("message-id:"):
                with lock:
                    smarthost_got.add(line.split(":", 1)[1].strip().strip("<>"))
                break
        return "250 OK"


def control(method, target, body=None, token=None):
    c = UnixHTTPConnection(os.path.join(data, "control.sock"), timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        c.request(method, target, body=json.dumps(body) if body else None, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start(cfg, log):
    proc = subprocess.Popen([herald_bin, "run", "--config", cfg, "--data", data],
                            stderr=open(log, "a"), stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"herald exited at start:\n{open(log).read()[-3000:]}")
        if os.path.exists(os.path.join(data, "control.sock")):
            try:
                if control("GET", "/manage/v1/version")[0] == 200:
                    return proc
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("herald did not start within 30 s")


def sender(port, rcpt, stop, n):
    i = 0
    while not stop.is_set():
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10)
            s.ehlo()
            while not stop.is_set():
                i += 1
                mid = f"soak-{n}-{i}-{random.getrandbits(32)}@client.example"
                msg = (f"From: user@client.example\r\nTo: {rcpt}\r\nSubject: Re: soak\r\n"
                       f"Message-ID: <{mid}>\r\n\r\nLooks right {n} {i}.\r\n")
                # Returns only after the final 250; raises when the server is gone first.
                if not s.sendmail("user@client.example", [rcpt], msg):
                    with lock:
                        acked.add(mid)
        except (smtplib.SMTPException, OSError):
            time.sleep(0.05)


def notifier(token, stop, n):
    i = 0
    while not stop.is_set():
        i += 1
        try:
            status, body = control("POST", "/api/v1/notifications", {
                "to": f"user{n}@example.org", "user_id": 7, "subject": f"Re: soak {n} {i}",
                "text": "Alice commented.", "thread": {"kind": "issue", "id": 42},
                "reason": "mention"}, token)
        except OSError:
            time.sleep(0.05)
            continue
        if status == 202:
            j = json.loads(body)
            with lock:
                queued[j["id"]] = j["message_id"].strip("<>")


def main():
    from aiosmtpd.controller import Controller
    hook_port, smtp_port, sh_port = free_port(), free_port(), free_port()
    hook = HookServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    sh = Controller(Smarthost(), hostname="127.0.0.1", port=sh_port)
    sh.start()
    cfg = os.path.join(work, "herald.toml")
    with open(cfg, "w") as f:
        f.write(f'hostname = "example.test"\n[smtp]\nenabled = true\naddress = "127.0.0.1"\n'
                f'port = {sh_port}\ntls = "off"\nauthentication = "none"\n'
                f'[replies]\nwebhook_url = "http://127.0.0.1:{hook_port}/hook"\n'
                f'webhook_secret = "{SECRET}"\n[console]\nlisten = "127.0.0.1:0"\n'
                f'[inbound]\nlisten = "127.0.0.1:{smtp_port}"\n')
    log = os.path.join(work, "herald.log")
    proc = start(cfg, log)
    rcpt = subprocess.run([herald_bin, "reply-address", "issue", "42", "7", "--data", data],
                          capture_output=True, text=True, check=True).stdout.strip()
    token = subprocess.run([herald_bin, "config", "get", "api.token", "--reveal", "--data", data],
                           capture_output=True, text=True, check=True).stdout.strip()
    kills, end = 0, time.time() + seconds
    while time.time() < end:
        stop = threading.Event()
        threads = [threading.Thread(target=sender, args=(smtp_port, rcpt, stop, n)) for n in range(4)]
        threads += [threading.Thread(target=notifier, args=(token, stop, n)) for n in range(2)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(1.5, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        stop.set()
        for t in threads:
            t.join()
        proc = start(cfg, log)
    # Once more, until everything acknowledged is through (or two minutes).
    deadline = time.time() + 120
    while time.time() < deadline:
        with lock:
            missing = [m for m in acked if m not in deliveries]
            unsent = [i for i, m in queued.items() if m not in smarthost_got]
        if not missing and not unsent:
            break
        time.sleep(0.5)
    proc.terminate()
    proc.wait()
    sh.stop()
    hook.shutdown()
    with lock:
        missing = sorted(m for m in acked if m not in deliveries)
        doubled = sorted(m for m, ids in deliveries.items() if len(ids) > 1)
        unsent = sorted(i for i, m in queued.items() if m not in smarthost_got)
        print(f"soak: {seconds:.0f} s, {kills} SIGKILLs; {len(acked)} replies got 250, "
              f"{len(deliveries)} reached the webhook, {len(missing)} missing, {len(doubled)} "
              f"with two delivery ids; {len(queued)} notifications got 202, "
              f"{len(queued) - len(unsent)} reached the smarthost, {len(unsent)} missing")
    if missing or doubled or unsent:
        print("missing replies:", missing[:10], "\ntwo ids:", doubled[:10], "\nunsent:", unsent[:10])
        print(f"(herald's log and data kept in {work})")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
