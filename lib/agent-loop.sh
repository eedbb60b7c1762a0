# shellcheck shell=bash
# The agents image's long-running loop, sourced by docker/agents/entrypoint.sh.
# Kept in shell because the image carries no Rust toolchain; it stays this small.

DISINTO_VOLUMES=(/home/agent/data /home/agent/repos /home/agent/disinto/projects /home/agent/disinto/state)
DISINTO_HEARTBEAT=/home/agent/disinto/state/heartbeat
DISINTO_LOG=/home/agent/data/logs/agent.log
# The session in flight (started, pid, command) while AGENT_CMD runs; gone when idle.
DISINTO_SESSION=/home/agent/disinto/state/session
# Every session's start and end, a line each.
DISINTO_SESSIONS=/home/agent/disinto/state/sessions.log
# A drain request: while it names this container, the loop starts no new session.
DISINTO_DRAIN=/home/agent/disinto/state/drain
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

# `busy`: the session in flight and exit 0, or exit 1 when idle (the work probe disinto asks
# before it stops or replaces agents).
disinto_busy() {
  local pid
  [ -f "$DISINTO_SESSION" ] || return 1
  # A session about to start (the loop has not forked it yet) is work too.
  if grep -q '^starting=1$' "$DISINTO_SESSION" 2>/dev/null; then
    cat "$DISINTO_SESSION"
    return 0
  fi
  pid=$(sed -n 's/^pid=//p' "$DISINTO_SESSION" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cat "$DISINTO_SESSION"
}

# `drain`: no new session in this container (the one in flight goes on); `undrain` lifts it.
disinto_drain() {
  printf '%s\n' "${HOSTNAME:-unknown}" >"$DISINTO_DRAIN.tmp" && mv "$DISINTO_DRAIN.tmp" "$DISINTO_DRAIN"
}

disinto_undrain() {
  rm -f "$DISINTO_DRAIN"
}

# Whether a drain request names this container (one left by a replaced container does not).
disinto_draining() {
  [ "$(cat "$DISINTO_DRAIN" 2>/dev/null)" = "${HOSTNAME:-unknown}" ]
}

# The session's command as the probe shows it: its first word only, because AGENT_CMD comes
# from the operator's private .env and may carry a token; the probe's words reach the history.
disinto_session_command() {
  local first="${AGENT_CMD%%[[:space:]]*}"
  [ "$first" = "$AGENT_CMD" ] && printf '%s' "$first" || printf '%s …' "$first"
}

disinto_session_starting() {
  local tmp="$DISINTO_SESSION.tmp"
  printf 'started=%s\nstarting=1\ncommand=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(disinto_session_command)" >"$tmp"
  mv "$tmp" "$DISINTO_SESSION"
}

disinto_session_started() {
  local tmp="$DISINTO_SESSION.tmp"
  printf 'started=%s\npid=%s\ncommand=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$(disinto_session_command)" >"$tmp"
  mv "$tmp" "$DISINTO_SESSION"
  printf '%s start pid=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" >>"$DISINTO_SESSIONS" || true
}

disinto_session_ended() {
  rm -f "$DISINTO_SESSION"
  printf '%s end pid=%s status=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >>"$DISINTO_SESSIONS" || true
}

disinto_stop_session() {
  [ -n "$1" ] || return 0
  kill -TERM -- "-$1" 2>/dev/null || true
  local status=0
  wait "$1" 2>/dev/null || status=$?
  disinto_session_ended "$1" "$status"
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
  # On stop, the session in flight gets SIGTERM (its whole process group) and the time left
  # of the container's stop grace period to end cleanly; its end is recorded.
  trap 'disinto_log "stopping"; disinto_stop_session "$agent_pid"; exit 0' TERM INT
  # A session or a drain request left by the container this one replaces is not ours.
  rm -f "$DISINTO_SESSION"
  disinto_draining || disinto_undrain
  disinto_log "agents ${DISINTO_VERSION:-dev} started (uid $(id -u), poll ${interval}s)"
  while :; do
    now=$(date -u +%s)
    disinto_heartbeat "$started"
    if [ -n "$agent_pid" ] && ! kill -0 "$agent_pid" 2>/dev/null; then
      local status=0
      wait "$agent_pid" 2>/dev/null || status=$?
      disinto_session_ended "$agent_pid" "$status"
      agent_pid=""
    fi
    # One AGENT_CMD at a time: a slow run delays the next one, it never stacks up; while
    # draining, none starts.
    # The session is marked before the drain is looked at, so a drain asked in between
    # sees it (busy) instead of an idle loop that then starts one.
    if [ -n "${AGENT_CMD:-}" ] && [ "$now" -ge "$next_run" ] && [ -z "$agent_pid" ]; then
      disinto_session_starting
      if disinto_draining; then
        rm -f "$DISINTO_SESSION"
      else
        setsid bash -c "$AGENT_CMD" >>"$DISINTO_LOG" 2>&1 &
        agent_pid=$!
        disinto_session_started "$agent_pid"
        next_run=$((now + interval))
      fi
    fi
    sleep "$DISINTO_TICK" &
    wait $! || true
  done
}
