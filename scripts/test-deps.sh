#!/usr/bin/env bash
# Installs, on a fresh Debian machine, every package the tests drive as a real peer or checker.
# Idempotent and quiet when everything is there already.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Tools like nft live in /usr/sbin, which an unprivileged user's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

# command → Debian package
declare -A need=(
  [curl]=curl                       # HTTPS client against the console
  [openssl]=openssl                 # reads the served certificate; s_client -starttls smtp
  [systemd-analyze]=systemd         # verifies board/herald.service
  [nft]=nftables                    # checks board/firewall/herald.nft
  [python3]=python3                 # checks board/herald.toml with tomllib; smtplib client
  [swaks]=swaks                     # SMTP client against the inbound server
  [smtp-source]=postfix             # Postfix's SMTP load generator (postfix itself stays off)
  [pflogsumm]=pflogsumm             # reads mail.log as a Postfix log
  [chromium]=chromium               # the console in a real browser (headless, over WebDriver)
  [chromedriver]=chromium-driver    # WebDriver for it
  [fc-list]=fontconfig              # fonts for the screenshots...
  [npm]=npm                         # installs axe-core for the browser tests
  [ip]=iproute2                     # network namespaces (a client that is not loopback)
  [dnsmasq]=dnsmasq-base            # a real DNS server for the diagnostics' checks (no service)
)
# Japanese text in the screenshots (a small CJK font).
fc-list 2>/dev/null | grep -qi "ipagothic\|noto sans cjk" || need_fonts=fonts-ipafont-gothic
# perl module → Debian package
declare -A need_perl=(
  [Net::SSLeay]=libnet-ssleay-perl  # swaks --tls
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for mod in "${!need_perl[@]}"; do
  perl -M"$mod" -e1 >/dev/null 2>&1 || missing+=("${need_perl[$mod]}")
done
[ -n "${need_fonts:-}" ] && missing+=("$need_fonts")

if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  SUDO=""
  # sudo drops the environment: pass DEBIAN_FRONTEND through it.
  [ "$(id -u)" -eq 0 ] || SUDO="sudo DEBIAN_FRONTEND=noninteractive"
  # postfix is wanted only for smtp-source: leave it unconfigured, so it never starts.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  # apt and debconf chatter only when something goes wrong.
  if ! out=$($SUDO apt-get update -qq 2>&1 &&
      $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
fi

# The smarthost test peer (tests/peers/smarthost.py) is built on aiosmtpd, pinned; the OpenAPI
# document is checked with openapi-spec-validator (and its schema validator), and /metrics with
# prometheus_client's parser, pinned.
for pkg in aiosmtpd==1.4.6 openapi-spec-validator==0.7.1 prometheus-client==0.21.1; do
  module=$(echo "${pkg%%=*}" | tr - _)
  if ! python3 -c "import $module" >/dev/null 2>&1; then
    echo "test-deps: installing $pkg"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check "$pkg"
  fi
done

# axe-core, pinned by tests/browser/package-lock.json, for the accessibility checks.
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  echo "test-deps: installing axe-core (npm ci in tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi

# make lint needs rustfmt and clippy with the toolchain.
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null
  done
fi
