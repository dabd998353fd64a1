#!/usr/bin/env bash
# Builds overlay4j and replays the flannel walk-through live in network namespaces: two hosts, a container on
# each, an overlay between them, then ping and a TCP stream across it. Run as root.
#   scripts/demo.sh [--backend udp|vxlan|host-gw] [--vxlan-dataplane=kernel|userspace|auto] [--seconds N]
#                   [--prefix P] [--offloads=true|false]
# udp (the walk-through's, overlay4j's userspace data plane, with offloads unless --offloads=false) is the default;
# vxlan and host-gw program the kernel as flanneld does, and the demo prints the neighbours, FDB entries and routes
# they made; --backend vxlan --vxlan-dataplane=userspace runs the same VXLAN on overlay4j's TUN data plane instead.
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
