#!/usr/bin/env bash
# Runs overlay4j's whole test suite: unit tests, kernel tests in network namespaces the tests create, etcd tests
# against a real etcd server the tests start, overlayd's distribution, and a smoke run of every JMH benchmark (one
# short iteration each; the benchmarks are measured with overlay-bench's own commands, not here). Then the release
# checks: the library jars are reproducible and carry module names (scripts/check-reproducible.sh), and it/consumer,
# a project outside the reactor, builds and runs against them, installed into a temporary local repository, with
# one netty and one grpc version (scripts/check-consumer.sh). Needs root for the kernel tests (under CI=true they
# fail rather than skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_tools
mvn -B -ntp verify "$@"
# overlayd's distribution as a host gets it: the launcher runs from the unpacked tarball and the unit file verifies.
version=$(sed -n "s:.*<version>\(.*\)</version>.*:\1:p" pom.xml | head -1)
dist=$(mktemp -d)
repo=$(mktemp -d /tmp/overlay4j-repo.XXXXXX)
trap 'rm -rf "$dist" "$repo"' EXIT
tar -xzf overlayd/target/overlayd-*.tar.gz -C "$dist"
home=$(echo "$dist"/overlayd-*)
[ "$("$home/bin/overlayd" -version)" = "$version" ] || { echo "overlayd -version is not $version" >&2; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  sed "s#/opt/overlayd/bin/overlayd#$home/bin/overlayd#" "$home/systemd/overlayd.service" > "$dist/overlayd.service"
  systemd-analyze verify "$dist/overlayd.service"
fi
echo "overlayd distribution: $(basename "$home").tar.gz unpacks, bin/overlayd -version = $version, unit file verified"
echo "JMH smoke run (one 100 ms iteration per benchmark, to prove they run; not a measurement):"
# ignoreLock: a smoke run need not wait for, or fail on, a measurement another checkout runs on this machine.
java -Djmh.ignoreLock=true -jar overlay-bench/target/benchmarks.jar -f 1 -wi 0 -i 1 -r 100ms -foe true \
  -rf text -rff /dev/null \
  | grep -E '^(Benchmark|[A-Za-z]+Benchmark\.)' | tail -n +1
# The thousand-host benchmark, small (100 hosts, 5 s of churn), to prove it runs and its final-state checks pass; the
# figures come from the full run (java -cp overlay-bench/target/benchmarks.jar io.overlay4j.bench.scale.ThousandHosts).
if [ "$(id -u)" -eq 0 ]; then
  echo "Thousand hosts, small:"
  out=$(java -cp overlay-bench/target/benchmarks.jar io.overlay4j.bench.scale.ThousandHosts --hosts 100 \
    --churn-seconds 5 2>&1) || { echo "$out"; exit 1; }
  echo "$out" | grep -A 8 '^thousand hosts:'
fi
# The soak's short run: three nodes, a real etcd, traffic, churn, an etcd and a node restart, the fuzzer; its verdict
# line ends the output (the full run is ten minutes: bash overlay-bench/soak.sh).
if [ "$(id -u)" -eq 0 ]; then
  echo "Soak, short run:"
  bash overlay-bench/soak.sh --duration 75 --no-build
elif [ "${CI:-}" = "true" ]; then
  echo "the soak needs root (network namespaces)" >&2
  exit 1
else
  echo "Soak skipped: it needs root (network namespaces)."
fi
bash scripts/check-reproducible.sh --install-to "$repo"
bash scripts/check-consumer.sh --repo "$repo"
