#!/usr/bin/env bash
# Installs, on a fresh Debian machine, every package the tests drive as a real peer or checker.
# Idempotent and quiet when everything is there already.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# command → Debian package
declare -A need=(
  [curl]=curl                       # HTTPS client against the console
  [openssl]=openssl                 # reads the served certificate
  [systemd-analyze]=systemd         # verifies board/herald.service
  [nft]=nftables                    # checks board/firewall/herald.nft
  [python3]=python3                 # checks board/herald.toml with tomllib
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
