#!/usr/bin/env bash
# The one test command (README "Test"): installs what is missing, then runs every check.
#
# On a fresh Debian machine with only the Rust toolchain it installs the system packages the
# tests need (with apt-get, only when run as root and only what is missing); otherwise it prints
# the exact line to run and stops. Then: cargo fmt --check, clippy with -D warnings, every test
# in the workspace, a build of the fuzz targets, and a build (not a run) of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- System dependencies --------------------------------------------------------------------
missing=()
# A C/C++ compiler: the linker for Rust, and libFuzzer for the fuzz targets.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# An independent MessagePack implementation for the golden-vector check.
python_with_msgpack() {
  local py
  for py in "${LOCKSTEP_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import msgpack' >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}
if ! LOCKSTEP_PYTHON=$(python_with_msgpack); then
  missing+=(python3 python3-msgpack)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "Installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    LOCKSTEP_PYTHON=$(python_with_msgpack) || {
      echo "python3-msgpack installed but no python3 can import msgpack" >&2
      exit 1
    }
  else
    echo "Missing system packages. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export LOCKSTEP_PYTHON

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "Missing Rust component $component. Run:" >&2
    echo "  rustup component add $component" >&2
    exit 1
  fi
done

# --- Checks ---------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
( cd crates/proto/fuzz && cargo fmt -- --check )

step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

step "Build the fuzz targets (stable, uninstrumented; see crates/proto/fuzz/README.md)"
cargo build --manifest-path crates/proto/fuzz/Cargo.toml --locked --target-dir target/fuzz

step "Build the benchmarks (not run)"
cargo bench --workspace --locked --no-run

step "All checks passed"
