#!/usr/bin/env python3
"""Inbound benchmark for `make bench`: herald against a local Postfix (the anchor), same run.

Throughput: Postfix's smtp-source (a new connection per message, as it does by default) at 1, 20
and 100 sessions with 2 KB and 20 KB messages; the median of 5 runs each. Latency: the project's
probe (examples/smtp_probe.rs) measures every message's time from the final "." to the "250", and
its whole transaction, while smtp-source keeps the row's load on.
Memory: peak RSS and PSS of herald, and the summed PSS of all Postfix processes, sampled during
the 100-session runs. Every message herald answered 250 must be in its mail.log as stored.
The ceiling: Postfix's smtp-sink (accepts and stores nothing) under the same load, in the same
run; herald's rate is also given as a share of it. CPU a message: the whole machine's busy CPU
(/proc/stat) from the start of a run until a short settle after it, minus the load generator's
own CPU (its rusage), over the messages, for herald and Postfix alike.

usage: bench_inbound.py HERALD_BIN PROBE_BIN SHARED_DIR WORK_DIR  (prints a Markdown section)
"""
import json, os, re, statistics, subprocess, sys, threading, time

herald_bin, probe_bin, shared, work = sys.argv[1:5]
HERALD_PORT, POSTFIX_PORT, SINK_PORT = 24525, 2625, 24527
# After a run, what the machine still does for it (deferred checkpoints, Postfix's delivery)
# counts too.
SETTLE = 0.5
RUNS, MESSAGES = 5, 3000
BACKLOG = 100_000
LOADS = [(1, 2048), (20, 2048), (100, 2048), (1, 20480), (20, 20480), (100, 20480)]


def sh(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def proc_kb(pid, path, field):
    """A kB figure from /proc/PID/<path> (0 when the process is gone)."""
    try:
        for line in open(f"/proc/{pid}/{path}"):
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    return proc_kb(pid, "smaps_rollup", "Pss:")


def rss_kb(pid):
    return proc_kb(pid, "status", "VmRSS:")


def postfix_pids():
    """Postfix's master and every process under it."""
    try:
        master = int(open("/var/spool/postfix/pid/master.pid").read().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, stack = [], [master]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


class Sampler:
    """Samples memory every 50 ms while a run goes on; keeps the peak."""

    def __init__(self, measure):
        self.measure, self.peak, self.stop = measure, 0, threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.measure())
            time.sleep(0.05)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()


def busy_seconds():
    """The machine's busy CPU so far (all cores), from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def smtp_source(port, sessions, size, rcpt, messages=MESSAGES):
    """One run: (messages a second, CPU seconds a message on the machine but the generator's)."""
    busy0, t = busy_seconds(), time.monotonic()
    p = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                          "-f", "bench@example.org", "-t", rcpt, f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.monotonic() - t
    if status != 0:
        sys.exit(f"bench: smtp-source failed ({status}): {p.stderr.read().decode()}")
    time.sleep(SETTLE)
    cpu = busy_seconds() - busy0 - (usage.ru_utime + usage.ru_stime)
    return messages / elapsed, max(cpu, 0.0) / messages


def tree_bytes(path):
    """Bytes on disk under `path` (allocated blocks, as du counts them)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


PROBE_MESSAGES = 300
# The load behind a latency measurement: smtp-source runs of this many messages, one after
# another, for as long as the probe takes (a server that makes DATA wait takes the probe longer).
LATENCY_CHUNK = 5000


def latency_under_load(port, sessions, size, rcpt):
    """smtp-source puts the load on; the probe, one more session, times its own messages from
    the final "." to the "250" meanwhile. Returns the probe's figures and how many messages the
    load sent."""
    probing, sent, failed = threading.Event(), [0], []

    def load():
        while probing.is_set():
            r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(LATENCY_CHUNK), "-l", str(size),
                                "-f", "bench@example.org", "-t", rcpt, f"127.0.0.1:{port}"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failed.append(r.stderr)
                return
            sent[0] += LATENCY_CHUNK

    probing.set()
    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.05)
    try:
        result = json.loads(sh(probe_bin, f"127.0.0.1:{port}", "1", str(PROBE_MESSAGES), str(size), rcpt))
    finally:
        probing.clear()
        loader.join()
    if failed:
        sys.exit(f"bench: smtp-source failed: {failed[0]}")
    return result, sent[0]


# --- the two servers, and the ceiling ---
os.makedirs(work, exist_ok=True)
sink_cmd = ["smtp-sink"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [f"127.0.0.1:{SINK_PORT}", "1024"]
sink = subprocess.Popen(sink_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sh("bash", os.path.join(shared, "bench", "postfix-anchor.sh"), os.path.join(work, "maildir"))
# Mail an earlier run left in Postfix's queue (its Maildir is gone: it would bounce, taking CPU
# from both servers for the whole run) is deleted first, and this run's after it.
sh("postsuper", "-d", "ALL")
def start_herald(name, port):
    """A fresh herald with its own data directory; returns (process, data dir)."""
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'hostname = "example.test"\n[smtp]\nenabled = true\naddress = "127.0.0.1"\n'
                f'[console]\nlisten = "127.0.0.1:0"\n[inbound]\nlisten = "127.0.0.1:{port}"\nmax_connections = 1024\n')
    data, logname = os.path.join(work, name), os.path.join(work, f"{name}.log")
    proc = subprocess.Popen([herald_bin, "run", "--config", cfg, "--data", data], stderr=open(logname, "w"))
    for _ in range(100):
        if "ready" in open(logname).read() or proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        sys.exit("bench: herald did not start:\n" + open(logname).read())
    return proc, data


# Memory at 100 concurrent sessions, on a fresh instance, so that it measures what concurrency
# costs rather than what earlier runs left in sled's cache.
fresh, fresh_data = start_herald("fresh", HERALD_PORT + 1)
try:
    fresh_rcpt = sh(herald_bin, "reply-address", "issue", "42", "7", "--data", fresh_data).strip()
    time.sleep(2)
    idle_rss, idle_threads = rss_kb(fresh.pid), len(os.listdir(f"/proc/{fresh.pid}/task"))
    empty_bytes = tree_bytes(fresh_data)
    with Sampler(lambda: rss_kb(fresh.pid)) as fr, Sampler(lambda: pss_kb(fresh.pid)) as fp:
        smtp_source(HERALD_PORT + 1, 100, 2048, fresh_rcpt)
    # A backlog: 100,000 messages pending (no webhook), still at 100 sessions.
    with Sampler(lambda: rss_kb(fresh.pid)) as br:
        smtp_source(HERALD_PORT + 1, 100, 2048, fresh_rcpt, BACKLOG - MESSAGES)
    time.sleep(2)
    backlog = {"rss": br.peak, "after": rss_kb(fresh.pid), "threads": len(os.listdir(f"/proc/{fresh.pid}/task")),
               "segments": tree_bytes(os.path.join(fresh_data, "segments")),
               "sled": tree_bytes(os.path.join(fresh_data, "db")), "all": tree_bytes(fresh_data)}
finally:
    fresh.terminate()
    fresh.wait(timeout=30)

herald, data = start_herald("data", HERALD_PORT)
try:
    rcpt = sh(herald_bin, "reply-address", "issue", "42", "7", "--data", data).strip()
    rows, mem, latency_load = [], {}, 0
    for sessions, size in LOADS:
        h_runs, p_runs, s_runs = [], [], []
        for _ in range(RUNS):
            if sessions == 100:
                with Sampler(lambda: rss_kb(herald.pid)) as hr, Sampler(lambda: pss_kb(herald.pid)) as hp:
                    h_runs.append(smtp_source(HERALD_PORT, sessions, size, rcpt))
                mem["herald_rss"] = max(mem.get("herald_rss", 0), hr.peak)
                mem["herald_pss"] = max(mem.get("herald_pss", 0), hp.peak)
                with Sampler(lambda: sum(pss_kb(p) for p in postfix_pids())) as pp:
                    p_runs.append(smtp_source(POSTFIX_PORT, sessions, size, rcpt))
                mem["postfix_pss"] = max(mem.get("postfix_pss", 0), pp.peak)
            else:
                h_runs.append(smtp_source(HERALD_PORT, sessions, size, rcpt))
                p_runs.append(smtp_source(POSTFIX_PORT, sessions, size, rcpt))
            s_runs.append(smtp_source(SINK_PORT, sessions, size, rcpt))
        h_rates, p_rates = [r for r, _ in h_runs], [r for r, _ in p_runs]
        h_cpu = statistics.median(c for _, c in h_runs)
        p_cpu = statistics.median(c for _, c in p_runs)
        sink_rate = statistics.median(r for r, _ in s_runs)
        hl, h_load = latency_under_load(HERALD_PORT, sessions, size, rcpt)
        pl, _ = latency_under_load(POSTFIX_PORT, sessions, size, rcpt)
        latency_load += h_load
        h, p = statistics.median(h_rates), statistics.median(p_rates)
        rows.append((sessions, size, h, p, h / p, hl, pl, sink_rate, h_cpu, p_cpu))
        print(f"bench: {sessions} sessions, {size} B: herald {h:.0f}/s, postfix {p:.0f}/s, sink {sink_rate:.0f}/s, "
              f"CPU a message herald {h_cpu * 1e6:.0f} µs, postfix {p_cpu * 1e6:.0f} µs, "
              f"herald p50 {hl['p50_ms']:.2f} ms p99 {hl['p99_ms']:.2f} ms", file=sys.stderr)
    sent = len(LOADS) * (RUNS * MESSAGES + PROBE_MESSAGES) + latency_load
finally:
    herald.terminate()
    herald.wait(timeout=30)
    sink.terminate()
    subprocess.run(["postfix", "stop"], capture_output=True)
    subprocess.run(["postsuper", "-d", "ALL"], capture_output=True)

# mail.log rotates at 64 MiB: read the previous file too.
logs = [os.path.join(data, "logs", n) for n in ("mail.log.1", "mail.log")]
text = "".join(open(p).read() for p in logs if os.path.exists(p))
stored = text.count("status=sent (queued")
ids = {m.group(1) for m in re.finditer(r"herald/spool\[\d+\]: (\w+): to=", text)}

print("| sessions | size | herald msgs/s | Postfix msgs/s | ratio | smtp-sink msgs/s (ceiling) | herald / sink | CPU a message, herald / Postfix | CPU ratio | herald p50 / p99 final dot → 250 under that load | Postfix p50 / p99 | whole transaction p50 / p99, herald | Postfix |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for s, size, h, p, r, hl, pl, sk, hc, pc in rows:
    print(f"| {s} | {size // 1024} KB | {h:,.0f} | {p:,.0f} | {r:.1f}× | {sk:,.0f} | {h / sk:.0%} "
          f"| {hc * 1e6:.0f} / {pc * 1e6:.0f} µs | {pc / hc if hc else float('inf'):.1f}× less "
          f"| {hl['p50_ms']:.2f} / {hl['p99_ms']:.2f} ms "
          f"| {pl['p50_ms']:.2f} / {pl['p99_ms']:.2f} ms | {hl['txn_p50_ms']:.2f} / {hl['txn_p99_ms']:.2f} ms "
          f"| {pl['txn_p50_ms']:.2f} / {pl['txn_p99_ms']:.2f} ms |")
print()
print(f"Memory at 100 concurrent sessions (peak, sampled every 50 ms), a fresh herald sent {MESSAGES:,} "
      f"2 KB messages: RSS {fr.peak / 1024:.1f} MiB (idle {idle_rss / 1024:.1f} MiB, {idle_threads} threads), PSS {fp.peak / 1024:.1f} MiB. "
      f"During the 100-session runs above, after earlier runs had stored their messages: herald RSS "
      f"{mem['herald_rss'] / 1024:.1f} MiB, PSS {mem['herald_pss'] / 1024:.1f} MiB; Postfix PSS of all its "
      f"processes {mem['postfix_pss'] / 1024:.1f} MiB. Message bodies are in segment files, not sled; sled "
      f"still keeps part of the records it wrote in memory, so herald's resident size grows with the "
      f"stored backlog until retention removes it.")
print()
# What smtp-source sends for `-l 2048`: the size, plus its headers and the line ends.
wire = BACKLOG * 2048
print(f"A backlog, on that fresh herald: {BACKLOG:,} messages of 2 KB pending (no webhook), sent at 100 sessions: "
      f"peak RSS {backlog['rss'] / 1024:.1f} MiB ({backlog['after'] / 1024:.1f} MiB after, {backlog['threads']} threads). "
      f"On disk: {backlog['all'] / 1e6:,.0f} MB in all for {wire / 1e6:,.0f} MB of message bytes "
      f"({backlog['all'] / wire:.2f}×; empty store {empty_bytes / 1e6:.0f} MB, of it the journal's fixed 64 MB): "
      f"segments {backlog['segments'] / 1e6:,.0f} MB, sled {backlog['sled'] / 1e6:,.0f} MB.")
print()
print(f"Durability check: {sent:,} messages sent to herald, {stored:,} stored (`status=sent` in mail.log), "
      f"{len(ids):,} distinct queue ids. smtp-source: {MESSAGES:,} messages a run, {RUNS} runs, median; "
      f"a new connection per message (its default). Latency: the probe sends {PROBE_MESSAGES} messages over "
      f"one more session while smtp-source puts the load of the row on (runs of {LATENCY_CHUNK:,} messages "
      f"until the probe is done), and times each from the final "
      f"\".\" to the \"250\", and its whole transaction from writing MAIL to that \"250\". herald makes a "
      f"DATA wait for its \"354\" while 12 messages are between theirs and their final reply, so under "
      f"load part of the wait moves from after the dot to before the message; the whole transaction "
      f"shows it.")
