#!/usr/bin/env bash
# Make a Docker engine and the base image available on a fresh Debian/Ubuntu machine (as root).
# Where no image registry is reachable, the base image is made locally with debootstrap.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail

log() { printf '[docker-up] %s\n' "$*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  log "installing docker.io and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

base=debian:bookworm-slim
if ! docker image inspect "$base" >/dev/null 2>&1; then
  log "creating $base with debootstrap (no registry is reachable)"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" >/tmp/debootstrap.log 2>&1 \
    || { tail -20 /tmp/debootstrap.log >&2; exit 1; }
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
fi
log "engine ready, $base present"
