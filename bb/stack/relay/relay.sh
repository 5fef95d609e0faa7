#!/bin/sh
# Usage: bb-relay LISTEN_PORT=HOST:PORT ...
# One socat per forward, listening on LISTEN_PORT; each connection gets a fresh socat child
# that looks HOST up and connects to it.
set -eu
[ "$#" -gt 0 ] || { echo "bb-relay: nothing to forward" >&2; exit 2; }
for forward in "$@"; do
  listen=${forward%%=*}
  target=${forward#*=}
  socat TCP-LISTEN:"$listen",fork,reuseaddr,nodelay,backlog=1024 \
        TCP:"$target",nodelay,connect-timeout=5 &
done
# As PID 1, sh ignores SIGTERM unless it asks for it.
trap 'exit 0' TERM INT
wait
