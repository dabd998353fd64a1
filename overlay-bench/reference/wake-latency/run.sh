#!/usr/bin/env bash
# Wake-latency probe: how long after a datagram is sent on loopback a waiter blocked on its socket has woken and read
# the clock, for a C waiter (poll), a JVM waiter in overlay4j's UdpSocket.awaitReadable (JNA poll), one in the JDK's
# blocking DatagramChannel.receive and one in a Selector that also wakes up by itself every 4 ms. 2,000 datagrams
# 1 ms apart warm each waiter up (not counted), then N at the given gap. Needs gcc and the examples jar
# (mvn -B -DskipTests package).
# usage: overlay-bench/reference/wake-latency/run.sh [N=300] [GAP_US=50000] [ROUNDS=2]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jar=${JAR:-$here/../../../examples/target/overlay4j-examples.jar}
n=${1:-300} gap=${2:-50000} rounds=${3:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/wakeprobe" "$here/wakeprobe.c"
javac -cp "$jar" -d "$work" "$here/WakeWait.java"
grep -m1 'model name' /proc/cpuinfo || true
probe() { # port, waiter command...
    local port=$1; shift
    "$@" & local pid=$!
    sleep 2 # the JVM's start
    "$work/wakeprobe" send "$port" 2000 1000 warm
    "$work/wakeprobe" send "$port" "$n" "$gap"
    wait "$pid"
}
for r in $(seq "$rounds"); do
    probe 45101 "$work/wakeprobe" wait 45101
    probe 45102 java -cp "$jar:$work" WakeWait jna 45102
    probe 45103 java -cp "$jar:$work" WakeWait nio 45103
    probe 45104 java -cp "$jar:$work" WakeWait tick 45104
done
