#!/usr/bin/env bash
# Install the system packages the service and its tests need, and start Redis if it is down.
set -euo pipefail

need=()
dpkg -s libmagic1 >/dev/null 2>&1 || need+=(libmagic1)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v clamd >/dev/null 2>&1 || need+=(clamav-daemon)
command -v sigtool >/dev/null 2>&1 || need+=(clamav)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
