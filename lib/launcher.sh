# shellcheck shell=bash
# Finds the disinto program for bin/disinto: $DISINTO_BIN if set, else the checkout's
# release build of xtask, built with cargo on first use (contributors need nothing but cargo).

disinto_launch() {
  local bin="${DISINTO_BIN:-}"
  if [ -z "$bin" ]; then
    bin="$DISINTO_HOME/target/release/xtask"
    if [ ! -x "$bin" ] || [ -n "$(find "$DISINTO_HOME/xtask" "$DISINTO_HOME/Cargo.lock" -newer "$bin" -print -quit 2>/dev/null)" ]; then
      if ! command -v cargo >/dev/null 2>&1; then
        echo "disinto: cargo not found on PATH: install Rust (rustup) or set DISINTO_BIN to a built xtask binary" >&2
        exit 127
      fi
      cargo build --quiet --release --locked -p xtask --manifest-path "$DISINTO_HOME/Cargo.toml" >&2
    fi
  fi
  DISINTO_HOME="$DISINTO_HOME" exec "$bin" disinto "$@"
}
