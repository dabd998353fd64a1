#!/usr/bin/env bash
# hops.sh: where a ping's round trip goes through a userspace overlay, hop by hop, from kernel tracepoints.
#
# usage: hops.sh [--calls] NETNS DEST [COUNT] [INTERVAL]
#   Run as root while an overlay is up (an e2e.sh run kept alive, or nodes started by hand) with `ping` in NETNS
#   reaching DEST through it. Needs perf (Debian: linux-perf) and an x86-64 kernel (system call numbers below).
#   --calls also prints, per round trip, each forwarder's system calls within its work: the call, when it was entered
#   (µs after that forwarder left poll(2)) and how long it took, e.g. "h2 recvmsg@14+4 write@26+35 read@64+3 sendto@70";
#   the gaps between calls are the forwarder's own code, the first one includes its return from poll(2).
#
# It records system calls and scheduler events on all CPUs during COUNT pings (default 20, INTERVAL 0.05 s), finds
# the two forwarder threads from the chain of wake-ups (the ping's send wakes the sender's forwarder, whose send wakes
# the receiver's), and prints, per round trip and as medians, in microseconds:
#   ping>h1   from the ping's sendto to the sending host's forwarder leaving poll(2) (kernel path and wake-up)
#   h1 work   from there to that forwarder's sendto (its own work on the request)
#   h1>h2     from there to the receiving host's forwarder leaving poll(2)
#   h2 work   from there to its sendto of the reply (TUN write, the echo, TUN read)
#   h2>ping   from there to the ping being woken (the sending host's forwarder receives and writes into its TUN)
# Tracing adds a few microseconds to each system call; compare forwarders measured the same way.
set -euo pipefail
calls=0
if [ "${1:-}" = --calls ]; then calls=1; shift; fi
ns=${1:?usage: hops.sh [--calls] NETNS DEST [COUNT] [INTERVAL]}; dest=${2:?DEST}; count=${3:-20}; interval=${4:-0.05}
command -v perf >/dev/null || { echo "hops.sh: perf is missing (apt-get install linux-perf)" >&2; exit 2; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_switch,sched:sched_wakeup -a \
    -o "$dir/p.data" -- ip netns exec "$ns" ping -n -q -c "$count" -i "$interval" "$dest" >/dev/null 2>&1
perf script -i "$dir/p.data" -F comm,tid,time,event,trace 2>/dev/null | grep -v '^ *perf ' >"$dir/p.txt"
# NR 44 = sendto, NR 7 = poll (x86-64).
awk '
function pidof(line,   i, n, f) { n = split(line, f, " "); for (i = 1; i <= n; i++) if (f[i] ~ /^pid=/) return substr(f[i], 5) }
{ t = $3; sub(":", "", t); t = t * 1e6 }
$1 == "ping" && /sys_enter: NR 44 / { if (s == 6) row(); s = 1; T0 = t; h1w = ""; h2w = ""; next }
s == 1 && $1 == "ping" && /sched_wakeup:/ && h1 == "" { h1 = pidof($0) }
s == 1 && $2 == h1 && /sys_exit: NR 7 / { T1 = t; s = 2; next }
s == 2 && $2 == h1 && /sys_enter: NR 44 / { T2 = t; s = 3; next }
s == 3 && $2 == h1 && /sched_wakeup:/ && h2 == "" && $0 !~ /comm=ping/ { h2 = pidof($0) }
s == 3 && $2 == h2 && /sys_exit: NR 7 / { T3 = t; s = 4; next }
s == 4 && $2 == h2 && /sys_enter: NR 44 / { T4 = t; s = 5; next }
s == 5 && /sched_wakeup: comm=ping / { T5 = t; s = 6; next }
function row() { printf "%.0f %.0f %.0f %.0f %.0f %.0f\n", T1 - T0, T2 - T1, T3 - T2, T4 - T3, T5 - T4, T5 - T0 }
END { if (s == 6) row() }' "$dir/p.txt" >"$dir/rows"
n=$(wc -l <"$dir/rows")
[ "$n" -gt 0 ] || { echo "hops.sh: no complete round trip found (is the overlay up, and ping reaching $dest?)" >&2; exit 1; }
printf '%8s %8s %8s %8s %8s %8s\n' 'ping>h1' 'h1 work' 'h1>h2' 'h2 work' 'h2>ping' total
cat "$dir/rows" | while read -r a b c d e f; do printf '%8s %8s %8s %8s %8s %8s\n' "$a" "$b" "$c" "$d" "$e" "$f"; done
printf 'median:'
for c in 1 2 3 4 5 6; do
    printf ' %8s' "$(cut -d' ' -f"$c" "$dir/rows" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
done
printf '   (%d round trips, us)\n' "$n"
[ "$calls" = 1 ] || exit 0
# Per round trip: each forwarder's system calls from its return from poll(2) to its sendto (the same state machine).
echo "system calls within each forwarder's work (name@entered+took, us after it left poll):"
awk '
function pidof(line,   i, n, f) { n = split(line, f, " "); for (i = 1; i <= n; i++) if (f[i] ~ /^pid=/) return substr(f[i], 5) }
function nr(line) { return match(line, /NR [0-9]+/) ? substr(line, RSTART + 3, RLENGTH - 3) + 0 : -1 }
function name(n) { return n in names ? names[n] : "NR" n }
function call(line, base,   n) {
    n = nr(line)
    if (line ~ /sys_enter/) { open_nr = n; open_t = t; return "" }
    if (n == open_nr && open_t != "") { s = sprintf(" %s@%.0f+%.0f", name(n), open_t - base, t - open_t); open_t = ""; return s }
    return ""
}
BEGIN { split("0 read 1 write 7 poll 44 sendto 45 recvfrom 46 sendmsg 47 recvmsg 20 writev 19 readv", a, " ")
        for (i = 1; i < 18; i += 2) names[a[i]] = a[i + 1] }
{ t = $3; sub(":", "", t); t = t * 1e6 }
$1 == "ping" && /sys_enter: NR 44 / { st = 1; open_t = ""; next }
st == 1 && $1 == "ping" && /sched_wakeup:/ && h1 == "" { h1 = pidof($0) }
st == 1 && $2 == h1 && /sys_exit: NR 7 / { T1 = t; st = 2; c1 = ""; next }
st == 2 && $2 == h1 && /sys_enter: NR 44 / { st = 3; c1 = c1 sprintf(" sendto@%.0f", t - T1); next }
st == 2 && $2 == h1 && /raw_syscalls:sys_e/ { c1 = c1 call($0, T1); next }
st == 3 && $2 == h1 && /sched_wakeup:/ && h2 == "" && $0 !~ /comm=ping/ { h2 = pidof($0) }
st == 3 && $2 == h2 && /sys_exit: NR 7 / { T3 = t; st = 4; c2 = ""; open_t = ""; next }
st == 4 && $2 == h2 && /sys_enter: NR 44 / { st = 5; printf "h1%s   h2%s sendto@%.0f\n", c1, c2, t - T3; next }
st == 4 && $2 == h2 && /raw_syscalls:sys_e/ { c2 = c2 call($0, T3); next }' "$dir/p.txt"

