#!/usr/bin/env bash
# Installs what building hashforum needs on a fresh Debian/Ubuntu machine that has Rust:
# a C++ compiler (RocksDB is built from source) and libclang (RocksDB's Rust bindings).
# With --test, also what the test suite checks our formats with: Go and its golang.org/x/mod
# sources (sumdb/note, sumdb/tlog), from Debian's packages, and Python packages (below).
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
if [ "${1:-}" = "--test" ]; then
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb ] || need+=(golang-golang-x-mod-dev)
fi
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if ! ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so'; then
  need+=(libclang-dev)
fi

if ((${#need[@]})); then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "setup: installing ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup)" >&2; exit 1; }

# With --test: from PyPI, pinned, in a virtual environment outside the clone, what the test
# suite runs as a member would: grpcio and grpcio-tools (a client built from proto/ alone),
# cryptography (a stock Ed25519 verifier of cosignatures), and Meta's python-threatexchange with
# everything it pulls in (faiss-cpu is its PDQ index), which loads and matches
# `hashforum export --format pytx` files; and prometheus-client, whose parser reads `/metrics`.
if [ "${1:-}" = "--test" ]; then
  pyenv="${HASHFORUM_PYENV:-/var/tmp/hashforum-pyenv}"
  pip=("$pyenv/bin/pip" install -q --disable-pip-version-check)
  [ -x "$pyenv/bin/python" ] || python3 -m venv "$pyenv"
  if ! "$pyenv/bin/python" -c 'import grpc, grpc_tools, cryptography' >/dev/null 2>&1; then
    echo "setup: installing grpcio, grpcio-tools and cryptography in $pyenv" >&2
    "${pip[@]}" grpcio==1.85.3 grpcio-tools==1.85.1 cryptography==48.0.0
  fi
  if ! "$pyenv/bin/python" -c 'import threatexchange.signal_type.pdq.signal' >/dev/null 2>&1; then
    echo "setup: installing threatexchange in $pyenv" >&2
    "${pip[@]}" threatexchange==1.2.17 certifi==2026.10.19.post1 charset-normalizer==3.5.3 \
      dacite==1.9.2 faiss-cpu==1.15.1 idna==3.20 numpy==2.4.6 packaging==26.4 pdqhash==0.2.8 \
      pillow==13.0.0 python-dateutil==4.0.0 requests==2.34.2 \
      types-python-dateutil==2.9.0.20261116 tzdata==2026.6 urllib3==2.8.0 \
      weighted-levenshtein==0.2.2
  fi
  if ! "$pyenv/bin/python" -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "setup: installing prometheus-client in $pyenv" >&2
    "${pip[@]}" prometheus-client==0.26.0
  fi
fi
