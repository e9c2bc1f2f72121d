#!/usr/bin/env bash
# check-board.sh — check the files in board/ that the appliance image bakes in.
#
# Usage: scripts/check-board.sh PATH/TO/herald
#   e.g. scripts/check-board.sh target/debug/herald
#
# Works on a build machine where herald is not installed and the herald user
# does not exist: the unit is verified from a temporary copy whose ExecStart
# points at the given binary (it only has to be an executable file).
#
# Checks:
#   - board/herald.service   systemd-analyze verify; any warning fails
#   - board/herald.toml      parses (python3 tomllib), carries no secrets
#   - board/herald.sysusers  systemd-sysusers (into a scratch root as root,
#   - board/herald.tmpfiles  systemd-tmpfiles  else a dry run / skipped)
#   - board/firewall/herald.nft  nft -c -f, if nft is installed (needs root)
#   - board/firewall/ufw-herald  ufw's own profile parser if available,
#                                else a basic field check
# Prints "board: ok" on success; on failure prints why and exits non-zero.
set -euo pipefail

# Where ExecStart points in the shipped unit; replaced by $1 in the copy.
readonly UNIT_BIN=/usr/local/bin/herald

die() { echo "board: FAIL: $*" >&2; exit 1; }
note() { echo "board: note: $*" >&2; }

[[ $# -eq 1 ]] || { echo "usage: $0 PATH/TO/herald" >&2; exit 2; }

bin=$(realpath -e -- "$1" 2>/dev/null) || die "binary not found: $1"
[[ -f $bin && -x $bin ]] || die "not an executable file: $bin"
# ExecStart splits on whitespace and expands % specifiers; keep it simple.
[[ $bin =~ ^[A-Za-z0-9_./+-]+$ ]] || die "unsupported characters in binary path: $bin"

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
board=$root/board

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# --- systemd unit ----------------------------------------------------------
unit=$tmp/herald.service
BIN=$bin awk -v from="ExecStart=$UNIT_BIN" '
    index($0, from) == 1 {
        rest = substr($0, length(from) + 1)
        if (rest == "" || rest ~ /^[ \t]/) { $0 = "ExecStart=" ENVIRON["BIN"] rest; n++ }
    }
    { print }
    END { exit (n == 1 ? 0 : 3) }
' "$board/herald.service" >"$unit" ||
    die "herald.service: expected exactly one 'ExecStart=$UNIT_BIN ...' line"

verify_flags=(--man=no --generators=no)
# Only count errors of this unit, not of units it pulls in from the host.
if systemd-analyze --help 2>/dev/null | grep -q -- '--recursive-errors'; then
    verify_flags+=(--recursive-errors=no)
fi
rc=0
out=$(systemd-analyze verify "${verify_flags[@]}" "$unit" 2>&1) || rc=$?
# Unknown or bad directives are only warnings ("..., ignoring.") with exit
# status 0, so also fail on any output line that names the unit.
if ((rc != 0)) || grep -qF -e herald.service -e "$tmp" <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "herald.service: systemd-analyze verify (exit $rc)"
fi

# --- boot config -------------------------------------------------------------
python3 - "$board/herald.toml" <<'PY' || die "herald.toml"
import sys
try:
    import tomllib
except ModuleNotFoundError:
    sys.exit("python3 has no tomllib (Python >= 3.11 needed)")
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
except (OSError, tomllib.TOMLDecodeError) as e:
    sys.exit(f"{path}: {e}")
for table in ("smtp", "inbound", "replies", "console"):
    if not isinstance(cfg.get(table), dict):
        sys.exit(f"{path}: missing table [{table}]")
# Generated at first boot; only an image builder may add them, never the repo.
secrets = [("smtp", "password"), ("replies", "webhook_secret"),
           ("api", "token"), ("console", "password")]
found = [f"{t}.{k}" for t, k in secrets if k in cfg.get(t, {})]
if found:
    sys.exit(f"{path}: secrets must not be committed: {', '.join(found)}")
PY

# --- sysusers.d / tmpfiles.d ------------------------------------------------
# Warnings name the file and line; exit status alone is not enough.
check_out() { # NAME OUTPUT
    if grep -qE '\.conf:[0-9]+|herald\.(sysusers|tmpfiles)' <<<"$2"; then
        printf '%s\n' "$2" >&2
        die "$1"
    fi
}
if ((EUID == 0)); then
    # Apply both to a scratch root laid out like the image.
    sr=$tmp/root
    mkdir -p "$sr/etc" "$sr/usr/lib/sysusers.d" "$sr/usr/lib/tmpfiles.d"
    cp "$board/herald.sysusers" "$sr/usr/lib/sysusers.d/herald.conf"
    cp "$board/herald.tmpfiles" "$sr/usr/lib/tmpfiles.d/herald.conf"
    out=$(systemd-sysusers --root="$sr" 2>&1) || { printf '%s\n' "$out" >&2; die "herald.sysusers"; }
    check_out herald.sysusers "$out"
    grep -q '^herald:[^:]*:[0-9]*:[0-9]*:[^:]*:/data/herald:' "$sr/etc/passwd" ||
        die "herald.sysusers: user herald with home /data/herald not created"
    out=$(systemd-tmpfiles --root="$sr" --create 2>&1) || { printf '%s\n' "$out" >&2; die "herald.tmpfiles"; }
    check_out herald.tmpfiles "$out"
    [[ $(stat -c '%a %U' "$sr/data/herald" 2>/dev/null) == "700 "* ]] ||
        die "herald.tmpfiles: /data/herald not created with mode 0700"
else
    out=$(systemd-sysusers --dry-run "$board/herald.sysusers" 2>&1) || { printf '%s\n' "$out" >&2; die "herald.sysusers"; }
    check_out herald.sysusers "$out"
    note "not root: herald.tmpfiles not checked"
fi

# --- firewall ----------------------------------------------------------------
# nft lives in /usr/sbin, which is often not in an unprivileged user's PATH.
nft=$(command -v nft || true)
[[ -z $nft && -x /usr/sbin/nft ]] && nft=/usr/sbin/nft
if [[ -z $nft ]]; then
    note "nft not installed: firewall/herald.nft not checked"
elif ((EUID != 0)); then
    note "not root: firewall/herald.nft not checked (nft -c needs netlink access)"
else
    "$nft" -c -f "$board/firewall/herald.nft" || die "firewall/herald.nft"
fi

# ufw's parser lives in the Debian python3 (ufw package); fall back to a basic
# check of the required fields with any python3.
ufw_py=/usr/bin/python3
[[ -x $ufw_py ]] && "$ufw_py" -c 'import ufw.applications' 2>/dev/null || ufw_py=python3
mkdir "$tmp/ufw"
cp "$board/firewall/ufw-herald" "$tmp/ufw/herald"
"$ufw_py" - "$tmp/ufw" <<'PY' || die "firewall/ufw-herald"
import builtins, configparser, os, re, sys
d = sys.argv[1]
try:
    builtins._ = lambda s: s          # ufw expects gettext's _ to be installed
    import ufw.applications
    profiles = ufw.applications.get_profiles(d)
except ImportError:
    cp = configparser.RawConfigParser()
    cp.read(os.path.join(d, "herald"))
    profiles = {s: dict(cp[s]) for s in cp.sections()}
    for name, p in profiles.items():
        for field in ("title", "description", "ports"):
            if not p.get(field):
                sys.exit(f"[{name}]: missing {field}")
        if not re.fullmatch(r"[0-9,:]+(/(tcp|udp))?(\|[0-9,:]+(/(tcp|udp))?)*", p["ports"]):
            sys.exit(f"[{name}]: bad ports {p['ports']!r}")
except Exception as e:
    sys.exit(str(e))
if "herald" not in profiles:
    sys.exit("no [herald] profile")
PY

echo "board: ok"
