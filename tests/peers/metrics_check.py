#!/usr/bin/env python3
"""Checks a Prometheus text exposition read from stdin with prometheus_client's parser (which
herald did not write), and the rules herald promises on top: every family typed and described,
counters ending in _total, histograms cumulative with +Inf, _sum and _count, names in base units,
no label that could name an address. Prints the samples as JSON lines for the test to read;
exits 1 naming what is wrong."""
import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
problems = []
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
ADDRESS_LABELS = {"client", "from", "to", "address", "addr", "ip", "host", "peer", "email", "rcpt", "sender", "recipient"}

declared = {}
for line in text.splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        declared[name] = kind
described = {l.split(" ")[2] for l in text.splitlines() if l.startswith("# HELP ")}

try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser's own verdict
    print(f"not valid exposition text: {e}", file=sys.stderr)
    sys.exit(1)

out = []
for fam in families:
    if not NAME.match(fam.name):
        problems.append(f"bad name {fam.name}")
    if not fam.name.startswith("herald_"):
        problems.append(f"{fam.name} lacks the herald_ prefix")
    if fam.type == "unknown":
        problems.append(f"{fam.name} has no TYPE")
    if fam.documentation == "":
        problems.append(f"{fam.name} has no HELP")
    for unit in ("_milliseconds", "_ms", "_kilobytes", "_minutes"):
        if unit in fam.name:
            problems.append(f"{fam.name} is not in base units")
    if fam.type == "histogram":
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        values = [s.value for s in buckets]
        if values != sorted(values):
            problems.append(f"{fam.name} buckets are not cumulative")
        if not buckets or buckets[-1].labels.get("le") != "+Inf":
            problems.append(f"{fam.name} has no +Inf bucket")
        names = {s.name for s in fam.samples}
        if f"{fam.name}_sum" not in names or f"{fam.name}_count" not in names:
            problems.append(f"{fam.name} lacks _sum or _count")
    for s in fam.samples:
        if fam.type == "counter" and not s.name.endswith(("_total", "_created")):
            problems.append(f"counter sample {s.name} does not end in _total")
        bad = ADDRESS_LABELS & set(s.labels)
        if bad:
            problems.append(f"{s.name} has an address label {sorted(bad)}")
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
for o in out:
    print(json.dumps(o))
