#!/usr/bin/env bash
# The one test command (README "Test"): installs what is missing, then runs every check.
#
# On a fresh Debian machine with only the Rust toolchain it installs the system packages the
# tests need (with apt-get, only when run as root and only what is missing); otherwise it prints
# the exact line to run and stops. Python's msgpack and aioquic go into a virtualenv at
# target/py (created once, reused). Then: cargo fmt --check, clippy with -D warnings, every test
# in the workspace, the web client's checks (types, committed bundle, Node unit tests, tests in
# headless Chromium), a build of the fuzz targets, and a build (not a run) of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- System dependencies --------------------------------------------------------------------
missing=()
# A C/C++ compiler: the linker for Rust, and libFuzzer for the fuzz targets.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# Real players for the SDK's end-to-end test.
command -v mpv >/dev/null 2>&1 || missing+=(mpv)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# The web client: Node.js and npm build and test it; Debian's Chromium runs its browser tests.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Reactions are emoji: without a colour emoji font the screenshots show empty boxes.
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
# Several relays share rooms through Redis: its tests start their own redis-server.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Installs Debian packages when root with apt-get; otherwise prints the line to run and stops.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "Installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
  else
    echo "Missing system packages. Run:" >&2
    echo "  sudo apt-get install -y $*" >&2
    exit 1
  fi
}
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# --- Python for the independent-implementation tests ----------------------------------------
# Python's `msgpack` reads the golden vectors, and an `aioquic` WebTransport client talks to a
# relay. Both live in a project-local virtualenv at target/py (reused on reruns), so nothing is
# installed into the system Python beyond the interpreter and its venv module.
PY_VENV="$PWD/target/py"
PY_MODULES=(msgpack aioquic PyJWT)

python_venv_ready() {
  [ -x "$PY_VENV/bin/python" ] && "$PY_VENV/bin/python" -c 'import msgpack, aioquic, jwt' >/dev/null 2>&1
}


setup_python() {
  if ! python_venv_ready; then
    # python3 and a working venv module (Debian keeps ensurepip in python3-venv).
    if ! command -v python3 >/dev/null 2>&1; then
      apt_install python3 python3-venv
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    if [ ! -x "$PY_VENV/bin/python" ] || ! "$PY_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
      step "Creating the Python virtualenv target/py"
      rm -rf "$PY_VENV"
      if ! python3 -m venv "$PY_VENV"; then
        # ensurepip imported but venv still failed (a Debian ensurepip stub): install and retry.
        rm -rf "$PY_VENV"
        apt_install python3-venv
        python3 -m venv "$PY_VENV"
      fi
    fi
    step "Installing ${PY_MODULES[*]} into target/py"
    "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_MODULES[@]}" || {
      echo "pip could not install ${PY_MODULES[*]} into target/py (it needs the Python package index)" >&2
      exit 1
    }
    python_venv_ready || {
      echo "target/py cannot import ${PY_MODULES[*]} after pip install" >&2
      exit 1
    }
  fi
  export LOCKSTEP_PYTHON="$PY_VENV/bin/python"
}
setup_python
if [ -n "${LOCKSTEP_ONLY_PYTHON:-}" ]; then
  echo "LOCKSTEP_PYTHON=$LOCKSTEP_PYTHON"
  exit 0
fi

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

step "Web client: install (npm ci), typecheck, bundle check, unit tests"
cargo build -p lockstep-relay --bin lockstep --locked
(
  cd web
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent typecheck
  npm run --silent check-bundle
  node build.mjs --tests
  node --test target/test/*.test.mjs
)

step "Web client in real headless Chromium (each file starts its own relay and browser)"
(
  cd web
  for file in test/browser/*.test.mjs; do
    echo "--- $file"
    node --test "$file"
  done
)

step "Build the fuzz targets (stable, uninstrumented; see crates/proto/fuzz/README.md)"
cargo build --manifest-path crates/proto/fuzz/Cargo.toml --locked --target-dir target/fuzz

step "Build the benchmarks (not run)"
cargo bench --workspace --locked --no-run

step "All checks passed"
