"""make bench, the console (issue 13): configuration runs while smtp-source sends to the inbound
port throughout (each run's wall time from `herald config apply --wait`, the time the run
itself took, the 421s smtp-source met, messages sent against stored), and the console's page
latency under wrk at 50 connections, signed in. Prints a Markdown section.

    bench_console.py HERALD_BIN WORK_DIR
"""
import http.client, json, os, re, ssl, statistics, subprocess, sys, threading, time
from benchlib import sh, free_port, stop

herald_bin, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
RUNS = 20
SESSIONS, CHUNK, SIZE = 20, 2000, 2048

smtp_port, console_port = free_port(), free_port()
cfg = os.path.join(work, "herald.toml")
with open(cfg, "w") as f:
    f.write(f'hostname = "example.test"\n[smtp]\nenabled = true\naddress = "127.0.0.1"\n'
            f'[console]\nlisten = "127.0.0.1:{console_port}"\n'
            f'[inbound]\nlisten = "127.0.0.1:{smtp_port}"\nmax_connections = 1024\n')
data, logname = os.path.join(work, "data"), os.path.join(work, "herald.log")
proc = subprocess.Popen([herald_bin, "run", "--config", cfg, "--data", data], stderr=open(logname, "w"))
for _ in range(100):
    if "ready" in open(logname).read() or proc.poll() is not None:
        break
    time.sleep(0.1)
if proc.poll() is not None:
    sys.exit("bench: herald did not start:\n" + open(logname).read())


def cli(*args):
    return sh(herald_bin, *args, "--data", data)


try:
    rcpt = cli("reply-address", "issue", "42", "7").strip()

    # --- configuration runs under load ---
    loading, sent, refusals, failures = threading.Event(), [0], [0], []

    def load():
        while loading.is_set():
            r = subprocess.run(["smtp-source", "-s", str(SESSIONS), "-m", str(CHUNK), "-l", str(SIZE),
                                "-f", "bench@example.org", "-t", rcpt, f"127.0.0.1:{smtp_port}"],
                               capture_output=True, text=True)
            refusals[0] += r.stderr.count(" 421 ") + r.stdout.count(" 421 ")
            if r.returncode != 0:
                failures.append(r.stderr)
                return
            sent[0] += CHUNK

    loading.set()
    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(1)
    walls, took = [], []
    for i in range(RUNS):
        # max_connections is read by the port-25 listener: each run brings a new generation up.
        cli("config", "set", "inbound.max_connections", str(1024 + i % 2 + 1))
        t = time.monotonic()
        out = cli("config", "apply", "--wait")
        walls.append((time.monotonic() - t) * 1000)
        m = re.search(r"success in (\d+) ms", out)
        if not m:
            sys.exit(f"bench: run {i} did not succeed:\n{out}")
        took.append(int(m.group(1)))
        time.sleep(0.2)
    loading.clear()
    loader.join()
    if failures:
        sys.exit(f"bench: smtp-source failed during the runs: {failures[0]}")
    log = open(os.path.join(data, "logs", "mail.log")).read()
    stored = log.count("status=sent (queued for reply processing)")

    # --- console page latency ---
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE

    def request(method, path, body=None, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", console_port, context=ctx, timeout=30)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r, text

    r, page = request("GET", "/setup/login")
    login_cookie = r.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="_login" value="([0-9a-f]+)"', page).group(1)
    password = open(os.path.join(data, "initial-console-password")).read().strip()
    form = f"_login={token}&password={password}&next=/setup/settings"
    r, _ = request("POST", "/setup/login", form, {"Cookie": login_cookie, "Sec-Fetch-Site": "same-origin",
                                                  "Content-Type": "application/x-www-form-urlencoded"})
    session = [c for c in r.headers.get_all("Set-Cookie") if c.startswith("__Host-herald-session=")][0].split(";")[0]

    def wrk(path, conns):
        out = sh("wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", "10s", "--latency", "-H", f"Cookie: {session}",
                 f"https://127.0.0.1:{console_port}{path}")
        lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)$", out, re.M))
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        return lat, rate, int(non2xx.group(1)) if non2xx else 0, errors.group(1) if errors else "none"

    pages = [(p, c, wrk(p, c)) for p in ("/setup/settings", "/setup/runs/1", "/static/herald.css")
             for c in (50, 1)]
finally:
    stop(proc)

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

print("Configuration runs while smtp-source sends to the inbound port throughout "
      f"({SESSIONS} sessions, {SIZE // 1024} KB messages, runs of {CHUNK:,}): each run changes "
      "`inbound.max_connections`, so a new port-25 listener generation takes over on the same socket.")
print()
print("| runs | wall time, `config apply --wait` p50 / p99 / max | the run itself p50 / max | 421s met by smtp-source | messages sent / stored / lost |")
print("|---|---|---|---|---|")
print(f"| {RUNS} | {pct(walls, .5):.0f} / {pct(walls, .99):.0f} / {max(walls):.0f} ms | "
      f"{pct(took, .5)} / {max(took)} ms | {refusals[0]} | {sent[0]:,} / {stored:,} / {sent[0] - stored:,} |")
print()
print("Console pages under `wrk -d10s` over HTTPS, signed in, at 50 connections (`-t2 -c50`, wrk on the "
      "same 2 cores) and at one (`-t1 -c1`: the time one page takes with nothing queued before it). The "
      "TLS handshake is paid once per connection; each request is parsed by the HTTPS front and answered "
      "by the router. At 50 connections the cores are saturated and latency is mostly queueing: by "
      "Little's law the mean is 50 / requests-per-second.")
print()
print("| page | connections | requests/s | p50 | p90 | p99 | mean by Little's law | non-2xx | socket errors |")
print("|---|---|---|---|---|---|---|---|---|")
for path, conns, (lat, rate, non2xx, errors) in pages:
    print(f"| `{path}` | {conns} | {rate:,.0f} | {lat.get('50', '?')} | {lat.get('90', '?')} | {lat.get('99', '?')} | "
          f"{conns / rate * 1000:.2f}ms | {non2xx} | {errors} |")
