# shellcheck shell=bash
# Finds the disinto program for bin/disinto: $DISINTO_BIN if set, else the checkout's release
# build of the disinto crate, built with cargo on first use (contributors need nothing but
# cargo; operators extract the binary from a release image and need neither).

disinto_launch() {
  local bin="${DISINTO_BIN:-}"
  if [ -z "$bin" ]; then
    local target="${CARGO_TARGET_DIR:-$DISINTO_HOME/target}"
    case "$target" in /*) ;; *) target="$DISINTO_HOME/$target" ;; esac
    bin="$target/release/disinto"
    if [ ! -x "$bin" ] || [ -n "$(find "$DISINTO_HOME/disinto" "$DISINTO_HOME/Cargo.lock" "$DISINTO_HOME/.env.example" "$DISINTO_HOME/VERSION" -newer "$bin" -print -quit 2>/dev/null)" ]; then
      if ! command -v cargo >/dev/null 2>&1; then
        echo "disinto: cargo not found on PATH: install Rust (rustup), or set DISINTO_BIN to a disinto binary (one ships in every agents image at /usr/local/bin/disinto)" >&2
        exit 127
      fi
      cargo build --quiet --release --locked -p disinto --manifest-path "$DISINTO_HOME/Cargo.toml" >&2
    fi
  fi
  # What a timer should run (`disinto schedule`): this launcher, not the build behind it.
  DISINTO_LAUNCHER="$DISINTO_HOME/bin/disinto" exec "$bin" "$@"
}
