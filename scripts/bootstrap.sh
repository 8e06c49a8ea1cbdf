#!/usr/bin/env bash
# Prepare a fresh Debian machine for ipkeeper's demo and tests: the few Debian
# packages the lab and tests use, then a virtual environment with the pinned
# Python dependencies and ipkeeper itself (editable). Safe to run again.
set -euo pipefail
venv=${1:-.venv}

# Debian packages: iproute2, iputils-ping and curl are for humans and tests
# poking at the lab (the product itself never runs them); nftables for the
# lab's lossy comm paths; chromium for the GUI tests (Playwright drives
# Debian's Chromium); python3-venv for the venv; debhelper, dpkg-dev and
# lintian for `make deb` and its test (the package's private venv is made
# with Debian's own /usr/bin/python3).
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)  # lab: lossy comm paths
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v dh >/dev/null 2>&1 || need+=(debhelper)
command -v dpkg-buildpackage >/dev/null 2>&1 || need+=(dpkg-dev)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: need root to install: ${need[*]}" >&2
        exit 1
    fi
    echo "bootstrap: installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# promtool, for the alert-rule and /metrics tests: taken out of Debian's
# prometheus package into the venv (no Prometheus service gets installed).
if [ ! -x "$venv/bin/promtool" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download -qq prometheus 2>/dev/null ||
        { apt-get update -qq && apt-get download -qq prometheus 2>/dev/null; }; })
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
    install -m 0755 "$tmp/usr/bin/promtool" "$venv/bin/promtool"
    rm -rf "$tmp"
fi

"$venv/bin/python" -m pip install -q -r requirements.lock
"$venv/bin/python" -m pip install -q --no-deps -e .
echo "bootstrap: $venv ready"
