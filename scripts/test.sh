#!/usr/bin/env bash
# Runs overlay4j's whole test suite: unit tests, kernel tests in network namespaces the tests create, and a JMH
# smoke run. Needs root for the kernel tests (under CI=true they fail rather than skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_build_tools
mvn -B -ntp verify "$@"
