#!/usr/bin/env bash
# Installs what building hashforum needs on a fresh Debian/Ubuntu machine that has Rust:
# a C++ compiler (RocksDB is built from source) and libclang (RocksDB's Rust bindings).
# With --test, also what the test suite checks our formats with: Go and its golang.org/x/mod
# sources (sumdb/note, sumdb/tlog), from Debian's packages, and Python's grpcio and
# cryptography (below).
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

# With --test: Python's grpcio, grpcio-tools and cryptography (from PyPI, pinned, in a virtual
# environment outside the clone), which the test suite uses as a member's client built from
# proto/ alone and as a stock Ed25519 verifier of cosignatures.
if [ "${1:-}" = "--test" ]; then
  pyenv="${HASHFORUM_PYENV:-/var/tmp/hashforum-pyenv}"
  if ! "$pyenv/bin/python" -c 'import grpc, grpc_tools, cryptography' >/dev/null 2>&1; then
    echo "setup: installing grpcio, grpcio-tools and cryptography in $pyenv" >&2
    python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install -q --disable-pip-version-check grpcio==1.85.3 grpcio-tools==1.85.1 \
      cryptography==48.0.0
  fi
fi
