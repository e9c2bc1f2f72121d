#!/usr/bin/env python3
"""Outbound benchmark for `make bench`: herald against a local Postfix (the anchor), same run.

One smtp-sink (Postfix's test server, which throws mail away) is the smarthost of both. herald:
a fresh data directory a run, `smtp.address`/`smtp.port` pointing at the sink, 8 clients (threads
of examples/api_load.rs, which takes far less CPU than Python's http.client did) POSTing
notifications (about 2 KB of text) to /api/v1/notifications over the control socket, each on its
own keep-alive connection; timed from the first POST until the sink has received all of them and
mail.log says `status=sent` for each. Postfix: set up by postfix-anchor.sh, then
`relayhost = [127.0.0.1]:<sink>`; smtp-source injects the same number of messages of the same size
(8 sessions) to a non-local recipient, timed from its start until the sink has received them all.
Runs alternate, 5 each, median (one run of herald varies from about 3,000 to 5,000/s on the
2-core VM; 5 runs give a steadier median than 3). Every notification answered 202 must reach the
sink exactly once.

usage: bench_outbound.py HERALD_BIN API_LOAD_BIN SHARED_DIR WORK_DIR  (prints a Markdown section;
progress and errors go to stderr, and any failure exits non-zero). OUTBOUND_MESSAGES=N runs N a
run instead of 5,000, for a quick try.
"""
import json, os, re, shutil, socket, statistics, subprocess, sys, threading, time

if len(sys.argv) != 5:
    sys.exit(__doc__.split("\n\n")[-1].strip())
herald_bin, load_bin, shared, work = sys.argv[1:5]
herald_bin, load_bin = os.path.abspath(herald_bin), os.path.abspath(load_bin)
POSTFIX_PORT = 2625
RUNS, CLIENTS = 5, 8
MESSAGES = int(os.environ.get("OUTBOUND_MESSAGES", 5000))  # fewer for a quick try
# How long one run may take before the bench gives up (Postfix does ~400/s here).
RUN_TIMEOUT = 300
# After the last message, how long the sink is watched for a duplicate.
GRACE = 1.0


from benchlib import BenchError, UnixHTTPConnection, free_port, sh, stop  # noqa: E402  (shared with the other benches)


class Sink:
    """smtp-sink on a loopback port; a thread reads its running counters (`-c`: "sess=N quit=N
    mesg=N" after every "." and QUIT, separated by CR) and keeps the message and session counts,
    with the moment the message count was last raised."""

    def __init__(self):
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(["smtp-sink", *user, "-c", f"127.0.0.1:{self.port}", "1000"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.count, self.sessions, self.cond = 0, 0, threading.Condition()
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()
        for _ in range(100):
            if self.proc.poll() is not None:
                raise BenchError(f"smtp-sink exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"smtp-sink does not listen on 127.0.0.1:{self.port}")

    def read(self):
        fd, rest = self.proc.stdout.fileno(), b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            now = time.monotonic()
            rest += chunk
            *done, rest = re.split(rb"[\r\n]", rest)
            counts = [(int(m.group(1)), int(m.group(2)))
                      for line in done if (m := re.search(rb"sess=(\d+) .*mesg=(\d+)", line))]
            if counts:
                with self.cond:
                    self.sessions = max(c[0] for c in counts)
                    if max(c[1] for c in counts) > self.count:
                        self.count, self.at = max(c[1] for c in counts), now
                    self.cond.notify_all()
            # smtp-sink writes its counters after every message: reading them as they come woke
            # this thread once a message, CPU taken from the servers being measured. Read what
            # gathered every 5 ms instead (the arrival time is then late by 5 ms at most).
            time.sleep(0.005)

    def wait_for(self, target, timeout):
        """Waits until `target` messages have arrived; returns the monotonic time they had."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.count < target:
                left = deadline - time.monotonic()
                if self.proc.poll() is not None:
                    raise BenchError(f"smtp-sink exited ({self.proc.returncode}) with {self.count:,} "
                                     f"messages, waiting for {target:,}")
                if left <= 0:
                    raise BenchError(f"the sink has {self.count:,} messages after {timeout} s, "
                                     f"waited for {target:,}")
                self.cond.wait(min(left, 0.5))
            return self.at

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


TEXT = "".join(f"Line {i:02d}: someone mentioned you in issue #42; this is filler text to make the "
               f"notification about two kilobytes long.\n" for i in range(20))[:2048]
BODY = json.dumps({"to": "user@example.org", "user_id": 7, "subject": "Bench", "text": TEXT,
                   "thread": {"kind": "issue", "id": 42}, "reason": "mention"}).encode()


def start_herald(name, sink_port):
    """A fresh herald with its own data directory whose smarthost is the sink; returns
    (process, data dir, API token)."""
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'hostname = "example.test"\n[smtp]\nenabled = true\naddress = "127.0.0.1"\n'
                f'port = {sink_port}\ntls = "off"\nauthentication = "none"\n'
                f'[console]\nlisten = "127.0.0.1:0"\n[inbound]\nlisten = "127.0.0.1:0"\n')
    data, logname = os.path.join(work, name), os.path.join(work, f"{name}.log")
    shutil.rmtree(data, ignore_errors=True)
    proc = subprocess.Popen([herald_bin, "run", "--config", cfg, "--data", data], stderr=open(logname, "w"))
    for _ in range(100):
        if "ready" in open(logname).read() or proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is not None or "ready" not in open(logname).read():
        stop(proc)
        raise BenchError("herald did not start:\n" + open(logname).read())
    try:
        token = sh(herald_bin, "config", "get", "api.token", "--reveal", "--data", data).strip()
    except BenchError:
        stop(proc)
        raise
    return proc, data, token


def maillog(data):
    logs = [os.path.join(data, "logs", n) for n in ("mail.log.1", "mail.log")]
    return "".join(open(p).read() for p in logs if os.path.exists(p))


def count_sent(data):
    return maillog(data).count("status=sent")


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


def herald_run(name, sink):
    """One herald run; returns a dict of figures."""
    proc, data, token = start_herald(name, sink.port)
    try:
        sock = os.path.join(data, "control.sock")
        base, base_sessions = sink.count, sink.sessions
        body = os.path.join(work, "notification.json")
        with open(body, "wb") as f:
            f.write(BODY)
        t0 = time.monotonic()
        load = subprocess.run([load_bin, sock, str(CLIENTS), str(MESSAGES), token, body],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
        api_done = time.monotonic()
        if load.returncode != 0:
            raise BenchError(f"api_load failed ({load.returncode}): {load.stderr}")
        result = json.loads(load.stdout)
        latencies, ids, connects = result["latencies_ms"], result["ids"], result["connects"]
        if result["errors"]:
            raise BenchError(f"{len(result['errors'])} client(s) failed, the first: {result['errors'][0]}")
        sunk = sink.wait_for(base + MESSAGES, RUN_TIMEOUT)
        deadline = time.monotonic() + RUN_TIMEOUT
        while count_sent(data) < MESSAGES:
            if time.monotonic() > deadline:
                raise BenchError(f"mail.log has {count_sent(data):,} status=sent, expected {MESSAGES:,}")
            time.sleep(0.01)
        logged = time.monotonic()
        time.sleep(GRACE)
        text = maillog(data)
        sent_ids = re.findall(r"herald/smtp\[\d+\]: (\w+): to=<[^>]*>, .*status=sent", text)
        size = int(re.search(r"size=(\d+), nrcpt=1", text).group(1))
        conn = UnixHTTPConnection(sock)
        conn.request("GET", "/manage/v1/queue?limit=1")
        resp = conn.getresponse()
        queue = json.loads(resp.read())
        conn.close()
        if resp.status != 200:
            raise BenchError(f"GET /manage/v1/queue answered {resp.status}: {queue}")
        latencies.sort()
        return {
            "rate": MESSAGES / (max(sunk, logged) - t0),
            "api_rate": MESSAGES / (api_done - t0),
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "accepted": len(ids), "distinct": len(set(ids)),
            "sink": sink.count - base, "logged": len(sent_ids), "logged_distinct": len(set(sent_ids)),
            "not_sent": len(re.findall(r"status=(?:deferred|bounced)", text)),
            "queue": queue["counts"],
            "size": size, "connects": connects, "sessions": sink.sessions - base_sessions,
        }
    finally:
        stop(proc)


def postfix_queue_empty(timeout=60):
    deadline = time.monotonic() + timeout
    while "Mail queue is empty" not in subprocess.run(["postqueue", "-p"], capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise BenchError("Postfix's queue did not empty")
        time.sleep(0.1)


def postfix_run(sink, size):
    base, base_sessions = sink.count, sink.sessions
    t0 = time.monotonic()
    sh("smtp-source", "-s", str(CLIENTS), "-m", str(MESSAGES), "-l", str(size),
       "-f", "bench@example.org", "-t", "user@example.org", f"127.0.0.1:{POSTFIX_PORT}")
    injected = time.monotonic()
    sunk = sink.wait_for(base + MESSAGES, RUN_TIMEOUT)
    time.sleep(GRACE)
    postfix_queue_empty()
    time.sleep(2.5)  # smtp_connection_cache_time_limit (2 s): the cached sessions end
    return {"rate": MESSAGES / (sunk - t0), "api_rate": MESSAGES / (injected - t0), "sink": sink.count - base,
            "sessions": sink.sessions - base_sessions}


def main():
    os.makedirs(work, exist_ok=True)
    sink = Sink()
    postfix_up = False
    try:
        sh("bash", os.path.join(shared, "bench", "postfix-anchor.sh"), os.path.join(work, "maildir"))
        postfix_up = True
        # Mail an earlier run left in Postfix's queue would be relayed into this run's counts.
        sh("postsuper", "-d", "ALL")
        sh("postconf", "-e", f"relayhost = [127.0.0.1]:{sink.port}")
        sh("postfix", "reload")
        time.sleep(1)  # reload: the new relayhost reaches qmgr and the smtp clients
        herald, postfix = [], []
        for i in range(RUNS):
            h = herald_run(f"run{i + 1}", sink)
            herald.append(h)
            p = postfix_run(sink, h["size"])
            postfix.append(p)
            print(f"bench: outbound run {i + 1}: herald {h['rate']:.0f}/s end to end, API {h['api_rate']:.0f}/s "
                  f"(p50 {h['p50']:.2f} ms, p99 {h['p99']:.2f} ms); Postfix {p['rate']:.0f}/s "
                  f"(smtp-source {p['api_rate']:.0f}/s)", file=sys.stderr)
    finally:
        if postfix_up:
            subprocess.run(["postconf", "-e", "relayhost ="], capture_output=True)
            subprocess.run(["postfix", "stop"], capture_output=True)
            subprocess.run(["postsuper", "-d", "ALL"], capture_output=True)
        sink.stop()

    problems = []
    for i, r in enumerate(herald, 1):
        for what, n in [("answered 202", r["accepted"]), ("distinct ids answered", r["distinct"]),
                        ("received by the sink", r["sink"]), ("status=sent in mail.log", r["logged"]),
                        ("distinct ids sent in mail.log", r["logged_distinct"]),
                        ("sent in the queue", r["queue"].get("sent", 0))]:
            if n != MESSAGES:
                problems.append(f"herald run {i}: {n:,} {what}, expected {MESSAGES:,}")
        if r["not_sent"]:
            problems.append(f"herald run {i}: {r['not_sent']} deferred or bounced in mail.log")
    problems += [f"Postfix run {i}: the sink received {r['sink']:,} of {MESSAGES:,}"
                 for i, r in enumerate(postfix, 1) if r["sink"] != MESSAGES]
    if problems:
        raise BenchError("durability check failed:\n" + "\n".join(problems))

    med = lambda runs, k: statistics.median(r[k] for r in runs)
    h, p = med(herald, "rate"), med(postfix, "rate")
    ha, pa = med(herald, "api_rate"), med(postfix, "api_rate")
    runs = lambda rs: ", ".join(f"{r['rate']:,.0f}" for r in rs)
    print("| measure | herald | Postfix | ratio |")
    print("|---|---|---|---|")
    print(f"| accepted → sink 250, msgs/s (median of {RUNS}) | {h:,.0f} | {p:,.0f} | {h / p:.1f}× |")
    print(f"| the {RUNS} runs | {runs(herald)} | {runs(postfix)} | |")
    print(f"| accepting alone, msgs/s (herald: all 202s; Postfix: smtp-source done) | {ha:,.0f} | {pa:,.0f} | {ha / pa:.1f}× |")
    print(f"| POST → 202 latency p50 / p99 (median run) | {med(herald, 'p50'):.2f} / {med(herald, 'p99'):.2f} ms | | |")
    print()
    conns = max(r["connects"] for r in herald)
    print(f"{MESSAGES:,} messages a run: herald notifications of {herald[0]['size']:,} bytes as queued, "
          f"POSTed by {CLIENTS} client threads (examples/api_load.rs) over the control socket ({conns} connections for {MESSAGES:,} "
          f"requests: {'keep-alive' if conns <= CLIENTS else 'not all kept alive'}); Postfix fed by "
          f"`smtp-source -s {CLIENTS} -l {herald[0]['size']}`, relaying to `[127.0.0.1]:<sink>`. "
          f"Durability check: {RUNS * MESSAGES:,} notifications answered 202 ({sum(r['distinct'] for r in herald):,} "
          f"distinct ids), {sum(r['sink'] for r in herald):,} received by the sink, "
          f"{sum(r['logged'] for r in herald):,} `status=sent` in mail.log "
          f"({sum(r['logged_distinct'] for r in herald):,} distinct ids), none deferred or bounced, "
          f"{sum(r['queue'].get('sent', 0) for r in herald):,} `sent` in the queue; Postfix: "
          f"{sum(r['sink'] for r in postfix):,} of {RUNS * MESSAGES:,} at the sink. "
          f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} cores.")

if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"bench: outbound: {e}")
