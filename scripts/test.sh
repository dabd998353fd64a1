#!/usr/bin/env bash
# Runs overlay4j's whole test suite: unit tests, kernel tests in network namespaces the tests create, etcd tests
# against a real etcd server the tests start, and a smoke run of every JMH benchmark (one short iteration each; the
# benchmarks are measured with overlay-bench's own commands, not here). Needs root for the kernel tests (under
# CI=true they fail rather than skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_tools
mvn -B -ntp verify "$@"
echo "JMH smoke run (one 100 ms iteration per benchmark, to prove they run; not a measurement):"
# ignoreLock: a smoke run need not wait for (or fail on) a measurement another process is running.
java -Djmh.ignoreLock=true -jar overlay-bench/target/benchmarks.jar -f 1 -wi 0 -i 1 -r 100ms -foe true -rf text -rff /dev/null \
  | grep -E '^(Benchmark|[A-Za-z]+Benchmark\.)' | tail -n +1
