# shellcheck shell=bash
# The agents image's long-running loop, sourced by docker/agents/entrypoint.sh.
# Kept in shell because the image carries no Rust toolchain; it stays this small.

DISINTO_VOLUMES=(/home/agent/data /home/agent/repos /home/agent/disinto/projects /home/agent/disinto/state)
DISINTO_HEARTBEAT=/home/agent/disinto/state/heartbeat
DISINTO_LOG=/home/agent/data/logs/agent.log
# Seconds between heartbeats; the health check allows three missed ones.
DISINTO_TICK=${DISINTO_TICK:-5}

# As root: make sure every volume exists and belongs to agent (fresh bind mounts are root's).
disinto_prepare_volumes() {
  local dir
  for dir in "${DISINTO_VOLUMES[@]}"; do
    mkdir -p "$dir"
    if [ "$(stat -c %u "$dir")" != 1000 ]; then
      chown agent:agent "$dir"
    fi
  done
}

disinto_heartbeat() {
  local tmp="$DISINTO_HEARTBEAT.tmp"
  printf 'version=%s\nstarted=%s\nlast_tick=%s\npid=%s\nuid=%s\n' \
    "${DISINTO_VERSION:-dev}" "$1" "$(date -u +%s)" "$$" "$(id -u)" >"$tmp"
  mv "$tmp" "$DISINTO_HEARTBEAT"
}

disinto_health() {
  local last now
  last=$(sed -n 's/^last_tick=//p' "$DISINTO_HEARTBEAT" 2>/dev/null) || return 1
  [ -n "$last" ] || return 1
  now=$(date -u +%s)
  [ $((now - last)) -le $((DISINTO_TICK * 3 + 5)) ]
}

disinto_log() {
  # A log that cannot be written must not stop the loop.
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | { tee -a "$DISINTO_LOG" || true; } >&2
}

disinto_loop() {
  local started next_run=0 agent_pid="" now interval="${POLL_INTERVAL:-60}"
  case "$interval" in
    '' | *[!0-9]*) echo "POLL_INTERVAL=$interval is not a number of seconds" >&2; exit 64 ;;
  esac
  mkdir -p "$(dirname "$DISINTO_LOG")"
  started=$(date -u +%s)
  # AGENT_CMD runs in its own process group, so stopping reaches everything it started.
  trap 'disinto_log "stopping"; [ -n "$agent_pid" ] && kill -TERM -- "-$agent_pid" 2>/dev/null; exit 0' TERM INT
  disinto_log "agents ${DISINTO_VERSION:-dev} started (uid $(id -u), poll ${interval}s)"
  while :; do
    now=$(date -u +%s)
    disinto_heartbeat "$started"
    # One AGENT_CMD at a time: a slow run delays the next one, it never stacks up.
    if [ -n "${AGENT_CMD:-}" ] && [ "$now" -ge "$next_run" ] \
       && ! { [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; }; then
      setsid bash -c "$AGENT_CMD" >>"$DISINTO_LOG" 2>&1 &
      agent_pid=$!
      next_run=$((now + interval))
    fi
    sleep "$DISINTO_TICK" &
    wait $! || true
  done
}
