#!/usr/bin/env bash
# Entrypoint of the agents image.
#   run         (default) the agent loop: heartbeat + AGENT_CMD every POLL_INTERVAL seconds
#   health      the HEALTHCHECK: succeeds while the heartbeat is fresh
#   busy        the work probe: prints the session in flight and exits 0, or exits 1 when idle
#   drain       start no new session in this container (the one in flight goes on)
#   undrain     lift the drain
#   draining    exits 0 while this container is asked to start no new session, 1 otherwise
#   CMD ...     anything else runs once as `agent` (the runner's approved actions)
# Started as root only to give the volumes to `agent`; everything else runs as uid 1000.
set -euo pipefail

# shellcheck source=../../lib/agent-loop.sh
source /opt/disinto/lib/agent-loop.sh

case "${1:-run}" in
  health) disinto_health; exit ;;
  busy) disinto_busy; exit ;;
  drain) disinto_drain; exit ;;
  undrain) disinto_undrain; exit ;;
  draining) disinto_draining; exit ;;
esac

if [ "$(id -u)" = 0 ]; then
  disinto_prepare_volumes
  # tini stays PID 1 (exec keeps the pid) and reaps whatever AGENT_CMD leaves behind.
  exec setpriv --reuid=agent --regid=agent --init-groups \
    env HOME=/home/agent USER=agent LOGNAME=agent \
    tini -s -- "$0" "$@"
fi

case "${1:-run}" in
  run) disinto_loop ;;
  *) exec "$@" ;;
esac
