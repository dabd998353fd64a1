#!/usr/bin/env bash
# Builds overlay4j and replays the flannel walk-through live in network namespaces: two hosts, a container on
# each, the udp overlay between them (with offloads; pass --offloads=false for the plain path), then ping and a TCP
# stream across it. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "the demo creates network namespaces and TUN devices: run it as root" >&2
  exit 1
fi
ensure_build_tools
mvn -B -ntp -q -DskipTests package -pl examples -am
exec java -jar examples/target/overlay4j-examples.jar "$@"
