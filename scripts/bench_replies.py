#!/usr/bin/env python3
"""Reply-processing benchmark for `make bench`: replies per second from the SMTP "250" to the
webhook's 2xx, and the time from the "250" to the webhook request for one reply.

The webhook receiver is part of this script: RECEIVERS processes (a selector each over its
connections, a listening socket each on the same port with SO_REUSEPORT, HTTP/1.1 keep-alive as
any application server), each answering every request with 204
and recording its arrival (time.monotonic(), the system-wide CLOCK_MONOTONIC, comparable between
processes) and the request; the Message-ID in the JSON body, the X-Herald-Delivery header and the
signature are read and checked after a phase, not while requests come in. A self-test first measures what the
receiver takes (Python clients, a keep-alive connection each, as herald keeps its own) and how much CPU it
spends per request.

Throughput, each run on fresh data directories (release build, `replies.webhook_url` at the
receiver), with the inbound benchmark's 20-session load: `smtp-source -s 20 -m N -l 2048` to a
reply address minted by `herald reply-address` (smtp-source's body is lines of `X`, which
extraction keeps as reply text).
- Apart: herald without `webhook_url` (reply processing waits for it) takes the load: the inbound
  rate alone; then the same herald is restarted with `webhook_url` and works the N records off:
  the processing rate alone, from the first webhook request to the last.
- Both at once: herald with its webhook takes the load. A sampler thread counts, every 200 ms,
  the messages herald has stored (mail.log `status=sent (queued for reply processing)`, written
  before the 250) and the webhook requests received: their difference is the pending backlog, read
  without asking herald anything. The run ends when the receiver has all N.
RUNS runs, median. The target (the backlog never grows at the inbound benchmark's rate) is met
when processing alone is at least as fast as inbound alone and the backlog stays within one
processor round (256) both at once.

Latency: another fresh herald, no other load; smtplib over one session sends a reply with real
text (a paragraph above a quoted notification) and waits for its webhook request before sending
the next, LATENCY times after WARMUP; each is timed from sendmail's return (after the 250 to the
final ".") to the receiver's arrival time.

Every run is checked: N webhook requests, N distinct Message-IDs and delivery ids, every
signature valid, no record left pending, every record `processed` in metroplex.log.

usage: bench_replies.py HERALD_BIN WORK_DIR  (prints a Markdown section; progress and errors go to
stderr, and any failure exits non-zero). REPLIES_MESSAGES=N runs N messages a run instead of
20,000, for a quick try.
"""
import hashlib, hmac, json, multiprocessing, os, re, shutil, signal, smtplib, socket
import statistics, subprocess, sys, threading, time

if len(sys.argv) != 3:
    sys.exit(__doc__.split("\n\n")[-1].strip())
herald_bin, work = sys.argv[1:3]
herald_bin = os.path.abspath(herald_bin)
RUNS, SESSIONS, SIZE = 3, 20, 2048
MESSAGES = int(os.environ.get("REPLIES_MESSAGES", 20000))
WARMUP, LATENCY = 10, 200
RECEIVERS = 2
SAMPLE = 0.2  # seconds between backlog samples
RUN_TIMEOUT = 600  # one throughput run, load and drain
SECRET = "bench-webhook-secret-0123456789ab"  # 32 characters
SELFTEST_CLIENTS, SELFTEST_REQUESTS = 4, 10000
ROUND = 256  # records the processor takes per round (src/replies/processor.rs)
QUEUED = b"status=sent (queued for reply processing)"


from benchlib import BenchError, UnixHTTPConnection, free_port, sh, stop  # noqa: E402  (shared with the other benches)


def cpu_seconds(pid):
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


# --- the webhook receiver ---

RESPONSE = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)


def receiver_main(sock, index, counts, conn):
    """One receiver process: answers every request with 204 and keeps (arrival, request bytes).
    HTTP/1.1 keep-alive, as any application server does (a connection is closed when the client
    asks or closes it), many connections at once on one selector. Commands on `conn`: "dump"
    sends back what arrived since the last dump (parsed), "stop"."""
    import selectors
    arrivals = []
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "listen")
    sel.register(conn, selectors.EVENT_READ, "command")
    bufs = {}

    def drop(c):
        sel.unregister(c)
        bufs.pop(c, None)
        c.close()

    while True:
        for key, _ in sel.select():
            if key.data == "command":
                what = conn.recv() if conn.poll() else "stop"
                if what != "dump":
                    return
                conn.send([parse_request(t, raw, start) for t, raw, start in arrivals])
                arrivals.clear()
                continue
            if key.data == "listen":
                try:
                    c, _ = sock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                bufs[c] = b""
                sel.register(c, selectors.EVENT_READ, "conn")
                continue
            c = key.fileobj
            try:
                chunk = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                drop(c)
                continue
            buf = bufs[c] + chunk
            close = False
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                m = CONTENT_LENGTH.search(buf, 0, end)
                start = end + 4
                need = start + (int(m.group(1)) if m else 0)
                if len(buf) < need:
                    break
                arrivals.append((time.monotonic(), buf[:need], start))
                counts[index] += 1
                close = close or bool(CLOSE.search(buf, 0, end))
                buf = buf[need:]
                try:
                    c.sendall(RESPONSE)
                except OSError:
                    close = True
                    break
            if close:
                drop(c)
            else:
                bufs[c] = buf


def parse_request(t, raw, start):
    """(arrival, message_id, delivery id, signature ok) of one request."""
    head, body = raw[:start].decode("latin-1"), raw[start:]
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in head.split("\r\n")[1:] if line)}
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    try:
        mid = json.loads(body).get("message_id")
    except ValueError:
        mid = None
    return (t, mid, headers.get("x-herald-delivery"),
            hmac.compare_digest(headers.get("x-herald-signature", ""), good))


class Receiver:
    """RECEIVERS processes on one loopback port (SO_REUSEPORT)."""

    def __init__(self, workers):
        ctx = multiprocessing.get_context("fork")
        self.counts = ctx.RawArray("q", workers)
        self.port, self.procs, self.conns = 0, [], []
        try:
            for i in range(workers):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("127.0.0.1", self.port))
                self.port = s.getsockname()[1]
                s.listen(4096)
                s.setblocking(False)
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=receiver_main, args=(s, i, self.counts, theirs), daemon=True)
                p.start()
                s.close()
                theirs.close()
                self.procs.append(p)
                self.conns.append(mine)
        except BaseException:
            self.stop()
            raise

    def count(self):
        return sum(self.counts)

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def dump(self):
        """Everything that arrived since the last dump, sorted by arrival."""
        out = []
        for c in self.conns:
            c.send("dump")
        for c, p in zip(self.conns, self.procs):
            if not c.poll(120):
                raise BenchError(f"the webhook receiver (pid {p.pid}) does not answer")
            out.extend(c.recv())
        return sorted(out)

    def stop(self):
        for c in self.conns:
            try:
                c.send("stop")
            except OSError:
                pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


def hook_request(port, body):
    head = (f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Herald-Delivery: x\r\n"
            f"X-Herald-Signature: sha256={hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}\r\n\r\n")
    return head.encode() + body


def selftest_client(port, first, n, start, failures):
    """n requests over one keep-alive connection, each sent after the previous one's answer."""
    start.wait()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(first, first + n):
            body = json.dumps({"thread": {"kind": "issue", "id": 42}, "user_id": 7, "from": "bench@example.org",
                               "subject": "Re: bench", "body": "X" * 2000, "message_id": f"selftest-{i}",
                               "received_at": "2026-01-01T00:00:00Z"}).encode()
            s.sendall(hook_request(port, body))
            answer = b""
            while not answer.endswith(b"\r\n\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 204"):
                with failures.get_lock():
                    failures.value += 1
                return


def selftest(receiver):
    """SELFTEST_REQUESTS requests from SELFTEST_CLIENTS processes, one keep-alive connection each; returns
    (requests/s, receiver CPU µs per request)."""
    ctx = multiprocessing.get_context("fork")
    start, failures = ctx.Event(), ctx.Value("q", 0)
    share = SELFTEST_REQUESTS // SELFTEST_CLIENTS
    clients = [ctx.Process(target=selftest_client, args=(receiver.port, i * share, share, start, failures),
                           daemon=True) for i in range(SELFTEST_CLIENTS)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.2)
        cpu0 = receiver.cpu()
        t0 = time.monotonic()
        start.set()
        for c in clients:
            c.join(RUN_TIMEOUT)
        elapsed = time.monotonic() - t0
        cpu = receiver.cpu() - cpu0
    finally:
        for c in clients:
            if c.is_alive():
                c.kill()
                c.join()
    got = receiver.dump()
    total = share * SELFTEST_CLIENTS
    if failures.value or len(got) != total or len({g[1] for g in got}) != total or not all(g[3] for g in got):
        raise BenchError(f"receiver self-test: {failures.value} failed requests, {len(got)} of {total} recorded")
    return total / elapsed, cpu / total * 1e6


# --- herald ---

def manage_get(data, target):
    conn = UnixHTTPConnection(os.path.join(data, "control.sock"))
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    if resp.status != 200:
        raise BenchError(f"GET {target} answered {resp.status}: {body}")
    return body


def pending_now(data):
    """Pending records as the management API lists them (it stops at 1,000)."""
    return len(manage_get(data, "/manage/v1/replies?status=pending&limit=1000")["replies"])


def start_herald(name, hook_port, port=None, fresh=True):
    """herald on the data directory `name` (emptied first when `fresh`), its webhook at
    `hook_port` (None: no webhook_url, reply processing waits); returns (process, data dir, SMTP
    port, reply address)."""
    port = port or free_port()
    cfg = os.path.join(work, f"{name}.toml")
    hook = f'webhook_url = "http://127.0.0.1:{hook_port}/hook"\n' if hook_port else ""
    with open(cfg, "w") as f:
        f.write(f'hostname = "example.test"\n[smtp]\nenabled = true\naddress = "127.0.0.1"\n'
                f'[replies]\n{hook}webhook_secret = "{SECRET}"\n[console]\nlisten = "127.0.0.1:0"\n'
                f'[inbound]\nlisten = "127.0.0.1:{port}"\nmax_connections = 1024\n')
    data, logname = os.path.join(work, name), os.path.join(work, f"{name}.log")
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
    proc = subprocess.Popen([herald_bin, "run", "--config", cfg, "--data", data], stderr=open(logname, "w"))
    try:
        for _ in range(100):
            if "ready" in open(logname).read() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is not None or "ready" not in open(logname).read():
            raise BenchError("herald did not start:\n" + open(logname).read())
        rcpt = sh(herald_bin, "reply-address", "issue", "42", "7", "--data", data).strip()
    except BaseException:
        stop(proc)
        raise
    return proc, data, port, rcpt


class StoredCounter:
    """Counts mail.log's `queued for reply processing` lines as they are appended (follows a
    rotation). The sampler thread and the main thread both read it."""

    def __init__(self, data):
        self.path, self.f, self.rest, self.n = os.path.join(data, "logs", "mail.log"), None, b"", 0
        self.lock = threading.Lock()

    def read(self):
        with self.lock:
            return self.read_locked()

    def read_locked(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except FileNotFoundError:
                return self.n
        while True:
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(self.f.fileno()).st_ino
            except FileNotFoundError:
                rotated = False
            chunk = self.f.read()  # after the check: what the old file got last is read too
            if chunk:
                text = self.rest + chunk
                cut = text.rfind(b"\n") + 1
                self.n += text.count(QUEUED, 0, cut)
                self.rest = text[cut:]
            if not rotated:
                return self.n
            self.f.close()
            self.f, self.rest = open(self.path, "rb"), b""

    def close(self):
        with self.lock:
            if self.f:
                self.f.close()
                self.f = None


def metroplex(data):
    path = os.path.join(data, "logs", "mail-replies", "metroplex.log")
    return open(path).read() if os.path.exists(path) else ""


def check(name, data, got, expected):
    """The durability and correctness check of one run; returns the problems."""
    problems = []
    mids, deliveries = {g[1] for g in got}, {g[2] for g in got}
    log = metroplex(data)
    success = log.count(" => success")
    failed = len(re.findall(r" => failed", log)) + log.count("is a duplicate of")
    pending = pending_now(data)
    for what, n in [("webhook requests", len(got)), ("distinct Message-IDs at the webhook", len(mids - {None})),
                    ("distinct delivery ids at the webhook", len(deliveries - {None})),
                    ("valid signatures", sum(1 for g in got if g[3])), ("`=> success` in metroplex.log", success)]:
        if n != expected:
            problems.append(f"{name}: {n:,} {what}, expected {expected:,}")
    if failed or pending:
        problems.append(f"{name}: {failed} failed or duplicate in metroplex.log, {pending} still pending")
    return problems, {"success": success, "failed": failed, "pending": pending}


def smtp_source(port, rcpt):
    sh("smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", str(SIZE),
       "-f", "bench@example.org", "-t", rcpt, f"127.0.0.1:{port}", timeout=RUN_TIMEOUT)


def wait_for(receiver, target, proc, what):
    deadline = time.monotonic() + RUN_TIMEOUT
    while receiver.count() < target:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise BenchError(f"{what}: the webhook has {receiver.count():,} requests, waited for {target:,} "
                             f"for {RUN_TIMEOUT} s (herald {'running' if proc.poll() is None else 'gone'})")
        time.sleep(0.01)


def together_run(i, receiver):
    """Inbound and processing at once: smtp-source's load on a herald whose webhook is up."""
    proc, data, port, rcpt = start_herald(f"together{i}", receiver.port)
    sampler_stop, samples = threading.Event(), []
    counter = StoredCounter(data)
    try:
        receiver.dump()  # nothing from before this run
        base = receiver.count()

        def sample():
            while True:
                stored, arrived = counter.read(), receiver.count() - base
                samples.append((time.monotonic(), stored, arrived))
                if sampler_stop.wait(SAMPLE):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        cpu0, rcpu0 = cpu_seconds(proc.pid), receiver.cpu()
        t0 = time.monotonic()
        sampler.start()
        smtp_source(port, rcpt)
        load_end = time.monotonic()
        at_end = (counter.read(), receiver.count() - base)
        api_pending = pending_now(data)
        wait_for(receiver, base + MESSAGES, proc, f"run {i}, both at once")
        sampler_stop.set()
        sampler.join()
        cpu, rcpu = cpu_seconds(proc.pid) - cpu0, receiver.cpu() - rcpu0
        time.sleep(1)  # a duplicate request would come now
        got = receiver.dump()
        problems, _ = check(f"run {i}, both at once", data, got, MESSAGES)
        if at_end[0] != MESSAGES:
            problems.append(f"run {i}: mail.log has {at_end[0]:,} stored when smtp-source ended, sent {MESSAGES:,}")
        if problems:
            raise BenchError("\n".join(problems))
        last = got[-1][0]
        during = [s for s in samples if s[0] <= load_end]
        backlog = [s[1] - s[2] for s in during] + [at_end[0] - at_end[1]]
        loaded = load_end - t0
        return {
            "accepted": MESSAGES / loaded,
            "processed_during": at_end[1] / loaded,
            "processed": MESSAGES / (last - t0),
            # Only a backlog of a round or more says how fast it drains.
            "drain": (MESSAGES - at_end[1]) / (last - load_end) if MESSAGES - at_end[1] >= ROUND else None,
            "backlog_max": max(backlog), "backlog_end": at_end[0] - at_end[1], "api_pending_end": api_pending,
            "empty_after": max(0.0, last - load_end), "load": loaded,
            "cpu_us": cpu / MESSAGES * 1e6, "receiver_cpu": rcpu, "herald_cpu": cpu, "wall": last - t0,
        }
    finally:
        sampler_stop.set()
        counter.close()
        stop(proc)


def apart_run(i, receiver):
    """Each alone: smtp-source's load on a herald without webhook_url (reply processing waits),
    then the same herald restarted with it, working off the backlog."""
    proc, data, port, rcpt = start_herald(f"apart{i}", None)
    try:
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        smtp_source(port, rcpt)
        accepted = MESSAGES / (time.monotonic() - t0)
        in_cpu = cpu_seconds(proc.pid) - cpu0
        if pending_now(data) < min(MESSAGES, 1000):
            raise BenchError(f"run {i}, apart: reply processing did not wait for webhook_url")
    finally:
        stop(proc)
    receiver.dump()
    base = receiver.count()
    proc, data, _, _ = start_herald(f"apart{i}", receiver.port, port=port, fresh=False)
    try:
        wait_for(receiver, base + MESSAGES, proc, f"run {i}, processing alone")
        cpu = cpu_seconds(proc.pid)  # from its start: booting is a few ms of it
        time.sleep(1)
        got = receiver.dump()
        problems, _ = check(f"run {i}, apart", data, got, MESSAGES)
        if problems:
            raise BenchError("\n".join(problems))
        return {"accepted": accepted, "in_cpu_us": in_cpu / MESSAGES * 1e6,
                "processed": MESSAGES / (got[-1][0] - got[0][0]), "proc_cpu_us": cpu / MESSAGES * 1e6}
    finally:
        stop(proc)


REPLY = ("Thanks, that fixes it for me. I tried the build from this morning on both machines and the "
         "crash on start is gone; the settings page loads again too.\n\nOne more thing: the log still "
         "shows a warning about the cache directory at start. Should I open a separate issue for it, or "
         "is it part of the same change?\n\nBest,\nSam\n")
QUOTE = "".join(f"> Line {n:02d}: someone mentioned you in issue #42; this is the quoted notification.\n"
                for n in range(20))


def reply_message(rcpt, mid):
    return (f"From: Sam Bench <bench@example.org>\r\nTo: <{rcpt}>\r\nSubject: Re: [acme/widgets] Crash on "
            f"start (#42)\r\nMessage-ID: <{mid}>\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}"
            f"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{REPLY}\r\nOn Sat, 28 Nov "
            f"2026 at 12:00, acme <notifications@example.test> wrote:\r\n{QUOTE}").replace("\n", "\r\n") \
        .replace("\r\r\n", "\r\n")


def latency_run(receiver):
    proc, data, port, rcpt = start_herald("latency", receiver.port)
    try:
        receiver.dump()
        sent = {}
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for n in range(WARMUP + LATENCY):
                mid = f"latency-{n}@bench.example.org"
                base = receiver.count()
                smtp.sendmail("bench@example.org", [rcpt], reply_message(rcpt, mid))
                sent[mid] = time.monotonic()
                if n == WARMUP:
                    first = sent[mid]
                deadline = sent[mid] + 30
                while receiver.count() == base:
                    if time.monotonic() > deadline:
                        raise BenchError(f"latency: no webhook request for reply {n} within 30 s")
                    time.sleep(0.0002)
        time.sleep(0.5)
        got = receiver.dump()
        problems, _ = check("latency", data, got, WARMUP + LATENCY)
        if problems:
            raise BenchError("\n".join(problems))
        size = len(reply_message(rcpt, "latency-0@bench.example.org"))
        sent = {f"<{mid}>": t for mid, t in sent.items()}  # the webhook has the header's <...>
        lat = sorted((t - sent[mid]) * 1000 for t, mid, _, _ in got if sent[mid] >= first)
        return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": lat[-1], "size": size}
    finally:
        stop(proc)


def main():
    os.makedirs(work, exist_ok=True)
    receiver = Receiver(RECEIVERS)
    try:
        rate, us = selftest(receiver)
        print(f"bench: replies: receiver self-test {rate:,.0f} requests/s, {us:.0f} µs CPU a request",
              file=sys.stderr)
        together, apart = [], []
        for i in range(1, RUNS + 1):
            r = apart_run(i, receiver)
            apart.append(r)
            print(f"bench: replies run {i}, apart: inbound alone {r['accepted']:,.0f}/s ({r['in_cpu_us']:.0f} µs "
                  f"herald CPU a message), processing alone {r['processed']:,.0f}/s ({r['proc_cpu_us']:.0f} µs)",
                  file=sys.stderr)
            r = together_run(i, receiver)
            together.append(r)
            print(f"bench: replies run {i}, both at once: accepted {r['accepted']:,.0f}/s, processed "
                  f"{r['processed_during']:,.0f}/s during the load, {r['processed']:,.0f}/s end to end; backlog max "
                  f"{r['backlog_max']:,}, at the end of the load {r['backlog_end']:,} (API: {r['api_pending_end']}), "
                  f"empty {r['empty_after']:.2f} s later; herald CPU {r['cpu_us']:.0f} µs a message, "
                  f"receiver {r['receiver_cpu']:.1f} s in {r['wall']:.1f} s", file=sys.stderr)
        lat = latency_run(receiver)
        print(f"bench: replies latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms", file=sys.stderr)
    finally:
        receiver.stop()

    def row(what, runs, key, fmt="{:,.0f}", unit=""):
        med = statistics.median(r[key] for r in runs)
        print(f"| {what} | {fmt.format(med)}{unit} | {', '.join(fmt.format(r[key]) for r in runs)} |")
        return med

    print(f"| measure | median of {RUNS} | the {RUNS} runs |")
    print("|---|---|---|")
    inbound = row("inbound alone (no `webhook_url`: processing waits), accepted msgs/s", apart, "accepted")
    alone = row(f"processing alone (the {MESSAGES:,} left by that load, after a restart with `webhook_url`), "
                f"250 → webhook 2xx, msgs/s", apart, "processed")
    row("both at once: accepted msgs/s", together, "accepted")
    row("both at once: processed during the load, msgs/s", together, "processed_during")
    row("both at once: end to end (first message sent → last webhook request), msgs/s", together, "processed")
    drains = [r["drain"] for r in together if r["drain"]]
    if drains:
        print(f"| both at once: the backlog draining after the load, msgs/s | {statistics.median(drains):,.0f} | "
              f"{', '.join(f'{d:,.0f}' for d in drains)} |")
    row("both at once: pending backlog at the end of the load", together, "backlog_end")
    row(f"both at once: pending backlog, max (sampled every {SAMPLE * 1000:.0f} ms)", together, "backlog_max")
    row("both at once: backlog empty after the load ends", together, "empty_after", "{:.2f}", " s")
    row("herald CPU a message: inbound alone", apart, "in_cpu_us", "{:.0f}", " µs")
    row("herald CPU a message: processing alone", apart, "proc_cpu_us", "{:.0f}", " µs")
    row("herald CPU a message: both at once", together, "cpu_us", "{:.0f}", " µs")
    print(f"| 250 → webhook request, one reply at a time, p50 / p99 | {lat['p50']:.2f} / {lat['p99']:.2f} ms | |")
    bounded = all(r["backlog_end"] <= ROUND for r in together)
    if alone >= inbound and bounded:
        verdict = "met: processing alone is at least the inbound rate, and the backlog stays bounded under the load"
    elif alone < inbound:
        verdict = (f"not met: at the inbound rate ({inbound:,.0f}/s) the backlog would grow by "
                   f"{inbound - alone:,.0f}/s; both at once, herald accepts only "
                   f"{statistics.median(r['accepted'] for r in together):,.0f}/s"
                   + (" and processing keeps up with that" if bounded else " and the backlog still grows"))
    else:
        verdict = "not met: the backlog grows while the load is on"
    print(f"| target: the backlog does not grow at the inbound benchmark's rate | {verdict} | |")
    print()
    total = RUNS * 2 * MESSAGES + WARMUP + LATENCY
    api = ", ".join(f"{r['api_pending_end']:,}" for r in together)
    print(f"{MESSAGES:,} messages a run, {SESSIONS} sessions (smtp-source, a new connection per message, "
          f"{SIZE:,}-byte bodies of `X` lines, which extraction keeps as reply text), a fresh data directory "
          f"for each measurement. Both at once: the backlog is messages stored (mail.log) less webhook requests "
          f"received; at the end of each load the management API listed "
          f"{api} pending (it lists 1,000 at most). "
          f"Webhook receiver: {RECEIVERS} Python processes on one port (SO_REUSEPORT) answering 204 with keep-alive; self-test "
          f"{rate:,.0f} requests/s from {SELFTEST_CLIENTS} Python client processes on the same cores (a "
          f"keep-alive connection each, as herald keeps), {us:.0f} µs of receiver CPU a request (about {1e6 / us:,.0f} "
          f"requests/s per core); during the median run both at once it used "
          f"{statistics.median(r['receiver_cpu'] / r['wall'] for r in together):.0%} of a core. Latency: "
          f"{LATENCY} replies of {lat['size']:,} bytes (text above a quoted notification) over one smtplib "
          f"session, each sent after the previous one's webhook request ({WARMUP} more first, not counted), "
          f"timed from sendmail's return to the request's arrival; max {lat['max']:.2f} ms. Check: {total:,} "
          f"replies sent, as many webhook requests, distinct Message-IDs and delivery ids and valid signatures, "
          f"`processed` in metroplex.log, none failed, duplicate or left pending. Measured "
          f"{time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} cores.")


def terminated(signum, frame):
    raise SystemExit(f"bench: replies: signal {signum}")


if __name__ == "__main__":
    # Whatever stops the script, the finally blocks stop herald, smtp-source and the receiver.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, terminated)
    try:
        main()
    except BenchError as e:
        sys.exit(f"bench: replies: {e}")
