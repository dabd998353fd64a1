#!/usr/bin/env bash
# overlay-bench/soak.sh -- a long run of overlay4j nodes under traffic, churn, restarts and hostile datagrams, ending
# in a one-line verdict. Run `soak.sh --help` for what it does and its options. Needs root. Every namespace it creates
# carries the prefix o4js<pid>- and is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly PREFIX="o4js$$"
readonly ETCD_IP=10.168.0.10
readonly ETCD_URL="http://$ETCD_IP:2379"
readonly KEYS=/coreos.com/network
readonly CONFIG='{"Network":"100.96.0.0/16","Backend":{"Type":"udp"}}'
readonly FUZZ_FROM=10.168.0.9 FUZZ_STRANGER=10.168.0.66 FUZZ_SUBNET=100.96.200.0/24
readonly NODE_MAIN=io.overlay4j.examples.OverlayHostMain
readonly FUZZ_MAIN=io.overlay4j.bench.fuzz.DatagramFuzzer
readonly CAPTURE_MAIN=io.overlay4j.bench.fuzz.DatagramCapture

usage() {
    cat <<EOF
Usage: sudo overlay-bench/soak.sh [options]

Soaks overlay4j: three hosts and an etcd on a switched underlay (network namespaces
${PREFIX%$$}<pid>-{sw,etcd,fuzz,host1,host2,host3,c1,c2}), one OverlayHostMain node per host on the udp
backend with the real etcd, and for the whole run:
  traffic   c2 -> c1: ping every 0.1 s, iperf3 TCP at --iperf-rate in runs of up to 30 s
  churn     host3's node joins and leaves again and again; fake leases are written and deleted in
            etcd every second (peer tables change all the time)
  faults    etcd is stopped for 5 s and restarted (at 25 % of the run, and 75 % in runs of 5 min or
            more); host2's node is stopped and restarted (at 55 %)
  attack    the datagram fuzzer (io.overlay4j.bench.fuzz.DatagramFuzzer) sends hostile datagrams at
            host1's node from an attacker host on the underlay (from an address that holds a lease and
            from a stranger's) at --fuzz-rate; capture sockets in c1, c2, host1, host2 and the
            attacker's host count any that get through
host1's node is never restarted: its RSS, threads and file descriptors are sampled every 5 s.

At the end one line, SOAK PASS or SOAK FAIL, with the figures; FAIL (exit status 1) if
  - host1's RSS, threads or descriptors grew (median of the last fifth of the run against the
    median of 20-40 % of it: RSS by more than 10 % + 16 MiB, threads by more than 2, fds by more than 4),
  - a ping was lost outside the restart of host2's node, or an iperf3 run failed,
  - a hostile datagram reached any capture socket, or host1's node counted fewer drops under a
    reason than the fuzzer sent for it (less host1's UDP receive-buffer overflows),
  - a node failed to start, died, or did not exit 0 on SIGTERM.

Options:
  --duration S       length of the run in seconds (default 600, at least 45)
  --fuzz-rate N      hostile datagrams per second (default 5000; 0: no fuzzer)
  --iperf-rate R     iperf3 -b rate (default 100M)
  --seed N           the fuzzer's seed (default: random, printed)
  --state-dir DIR    logs and samples (default /tmp/overlay4j-soak-<prefix>)
  --no-build         never run Maven; fail if the jars are missing
  --no-install       do not apt-get install missing tools
  -h, --help         this text
Environment: JAVA (default java), NODE_JAVA_OPTS (default: a fixed 96 MiB heap, pre-touched).
EOF
}

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[soak] ERROR: %s\n' "$*" >&2; exit 2; }

opt_duration=600 opt_fuzz_rate=5000 opt_iperf_rate=100M opt_seed="" opt_state_dir="" opt_build=1 opt_install=1
while (($#)); do
    arg=$1
    shift
    if [[ $arg == --*=* ]]; then
        set -- "${arg#*=}" "$@"
        arg=${arg%%=*}
    fi
    need_value() { (($# > 0)) && [[ -n $1 ]] || die "$arg needs a value (see --help)"; }
    case $arg in
        --duration) need_value "$@"; opt_duration=$1; shift ;;
        --fuzz-rate) need_value "$@"; opt_fuzz_rate=$1; shift ;;
        --iperf-rate) need_value "$@"; opt_iperf_rate=$1; shift ;;
        --seed) need_value "$@"; opt_seed=$1; shift ;;
        --state-dir) need_value "$@"; opt_state_dir=$1; shift ;;
        --no-build) opt_build=0 ;;
        --no-install) opt_install=0 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $arg (see --help)" ;;
    esac
done
[[ $opt_duration =~ ^[0-9]+$ ]] && ((opt_duration >= 45)) || die "--duration must be a whole number of seconds >= 45"
[[ $opt_fuzz_rate =~ ^[0-9]+$ ]] || die "--fuzz-rate must be a whole number"
[[ $opt_iperf_rate =~ ^[0-9]+[KMG]?$ ]] || die "--iperf-rate must be an iperf3 -b rate such as 100M"
[[ -z $opt_seed || $opt_seed =~ ^-?[0-9]+$ ]] || die "--seed must be a number"
[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, veth, bridges, TUN)"
readonly DURATION=$opt_duration FUZZ_RATE=$opt_fuzz_rate IPERF_RATE=$opt_iperf_rate
SEED=${opt_seed:-$RANDOM$RANDOM}
JAVA=${JAVA:-java}
NODE_JAVA_OPTS=${NODE_JAVA_OPTS:--Xms96m -Xmx96m -XX:+AlwaysPreTouch -XX:+UseSerialGC}

# ---------------------------------------------------------------------------------------------------------------------
# tools and jars
if ((opt_install)); then
    # shellcheck source=../scripts/lib.sh
    . "$REPO_ROOT/scripts/lib.sh"
    ensure_tools ip:iproute2 bridge:iproute2 ping:iputils-ping iperf3:iperf3 jq:jq etcd:etcd-server \
        etcdctl:etcd-client "$JAVA":openjdk-17-jre-headless
fi
for c in ip ping iperf3 jq etcd etcdctl "$JAVA"; do
    command -v "$c" >/dev/null 2>&1 || die "missing tool: $c"
done
EX_JAR=$REPO_ROOT/examples/target/overlay4j-examples.jar
BENCH_JAR=$REPO_ROOT/overlay-bench/target/benchmarks.jar
if [[ ! -f $EX_JAR || ! -f $BENCH_JAR ]]; then
    ((opt_build)) || die "jars missing ($EX_JAR, $BENCH_JAR); build with: mvn -B -q -DskipTests package"
    log "building the jars (mvn -B -q -DskipTests package)"
    (cd "$REPO_ROOT" && mvn -B -ntp -q -DskipTests package -pl examples,overlay-bench -am) >&2
fi

STATE=${opt_state_dir:-${TMPDIR:-/tmp}/overlay4j-soak-$PREFIX}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
readonly STATE
: >"$STATE/windows"      # "start end what" per expected outage (epoch seconds)
: >"$STATE/events"       # one line per fault or churn step
echo "t,rss_kb,threads,fds" >"$STATE/samples.csv"

# ---------------------------------------------------------------------------------------------------------------------
# namespaces (all ours: named $PREFIX-*) and processes (all ours: started here, stopped by pid)
NS_SW=$PREFIX-sw NS_ETCD=$PREFIX-etcd NS_FUZZ=$PREFIX-fuzz NS_C1=$PREFIX-c1 NS_C2=$PREFIX-c2
declare -A HOST_NS=([1]=$PREFIX-host1 [2]=$PREFIX-host2 [3]=$PREFIX-host3)
declare -A HOST_IP=([1]=10.168.0.2 [2]=10.168.0.3 [3]=10.168.0.4)
declare -A NODE_PID=() BG_PIDS=()
CREATED_NS=()

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

ns_create() {
    local ns=$1
    ip netns add "$ns"
    CREATED_NS+=("$ns")
    nsx "$ns" ip link set lo up
    nsx "$ns" sh -c 'for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done' 2>/dev/null ||
        true
    nsx "$ns" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 > "$f"; done' \
        2>/dev/null || true
}

# Processes of ours: killed by pid, TERM then KILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid ns
    trap '' INT TERM
    set +e
    touch "$STATE/stop"
    for pid in "${BG_PIDS[@]}" "${NODE_PID[@]}"; do stop_pid "$pid"; done
    [[ -z ${ETCD_PID:-} ]] || stop_pid "$ETCD_PID"
    for ((i = ${#CREATED_NS[@]} - 1; i >= 0; i--)); do
        ns=${CREATED_NS[$i]}
        for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" KILL; done
        ip netns del "$ns" 2>/dev/null
    done
    if ip netns list 2>/dev/null | grep -q "^$PREFIX-"; then
        echo "[soak] WARNING: namespaces left: $(ip netns list | grep "^$PREFIX-" | tr '\n' ' ')" >&2
        rc=3
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "run $PREFIX: $DURATION s, fuzz $FUZZ_RATE/s (seed $SEED), iperf3 $IPERF_RATE; state in $STATE"
ns_create "$NS_SW"
nsx "$NS_SW" ip link add br0 type bridge
nsx "$NS_SW" ip link set br0 up
attach() { # ns ip: eth0 in ns, its peer on the switch
    local ns=$1 ip=$2 port="p${#CREATED_NS[@]}"
    ip -n "$NS_SW" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$NS_SW" link set "$port" master br0 up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
}
ns_create "$NS_ETCD"
attach "$NS_ETCD" "$ETCD_IP"
for n in 1 2 3; do
    ns_create "${HOST_NS[$n]}"
    attach "${HOST_NS[$n]}" "${HOST_IP[$n]}"
    nsx "${HOST_NS[$n]}" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
done
container() { # n ns ip: a container behind host n's docker0
    local n=$1 ns=$2 ip=$3 host=${HOST_NS[$1]}
    ns_create "$ns"
    ip -n "$host" link add docker0 type bridge
    ip -n "$host" addr add "100.96.$n.1/24" dev docker0
    ip -n "$host" link set docker0 up
    ip -n "$host" link add veth-c type veth peer name eth0 netns "$ns"
    ip -n "$host" link set veth-c mtu 1472 master docker0 up
    ip -n "$ns" link set eth0 mtu 1472 up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" route add default via "100.96.$n.1"
}
container 1 "$NS_C1" 100.96.1.2
container 2 "$NS_C2" 100.96.2.3
# The attacker: a host of its own on the underlay, with a leased address and a stranger's.
ns_create "$NS_FUZZ"
attach "$NS_FUZZ" "$FUZZ_FROM"
ip -n "$NS_FUZZ" addr add "$FUZZ_STRANGER/24" dev eth0

# ---------------------------------------------------------------------------------------------------------------------
# etcd
ectl() { ETCDCTL_API=3 nsx "$NS_ETCD" etcdctl --endpoints "$ETCD_URL" --command-timeout=5s "$@"; }
etcd_start() {
    ip netns exec "$NS_ETCD" etcd --name soak --data-dir "$STATE/etcd" --listen-client-urls "$ETCD_URL" \
        --advertise-client-urls "$ETCD_URL" --listen-peer-urls "http://$ETCD_IP:2380" \
        --initial-advertise-peer-urls "http://$ETCD_IP:2380" --initial-cluster "soak=http://$ETCD_IP:2380" \
        >>"$STATE/etcd.log" 2>&1 &
    ETCD_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        ectl endpoint health >/dev/null 2>&1 && return 0
        kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited; see $STATE/etcd.log"
        sleep 0.2
    done
    die "etcd not healthy within 20 s; see $STATE/etcd.log"
}
etcd_start
ectl put "$KEYS/config" "$CONFIG" >/dev/null

# ---------------------------------------------------------------------------------------------------------------------
# nodes
node_start() { # n
    local n=$1 log="$STATE/node$1.log" i
    echo "--- start $(date +%s)" >>"$log"
    # shellcheck disable=SC2086
    ip netns exec "${HOST_NS[$n]}" "$JAVA" $NODE_JAVA_OPTS -cp "$EX_JAR" "$NODE_MAIN" --etcd-endpoints "$ETCD_URL" \
        --iface eth0 --prefer-subnet "100.96.$n.0/24" --subnet-file "$STATE/host$n.env" >>"$log" 2>&1 &
    NODE_PID[$n]=$!
    local lines
    lines=$(wc -l <"$log")
    for ((i = 0; i < 600; i++)); do
        if tail -n +"$lines" "$log" | grep -q '^READY'; then return 0; fi
        kill -0 "${NODE_PID[$n]}" 2>/dev/null || { log "node$n exited before READY (see $log)"; return 1; }
        sleep 0.1
    done
    log "node$n not READY within 60 s (see $log)"
    return 1
}
node_stop() { # n: SIGTERM, expect exit 0 and a stats line
    local n=$1 pid=${NODE_PID[$1]} rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; rc=137; fi
    wait "$pid" 2>/dev/null || rc=$?
    unset "NODE_PID[$n]"
    if ((rc != 0)); then echo "node$n exit $rc" >>"$STATE/failures"; fi
    return 0
}

node_start 1 || die "node1 failed to start"
node_start 2 || die "node2 failed to start"
NODE1_PID=${NODE_PID[1]}
# The fuzzer's lease: the attacker's first address holds 100.96.200.0/24 (a day long, it survives etcd's restarts).
FUZZ_LEASE_ID=$(ectl lease grant 86400 | awk '{print $2}')
ectl put --lease="$FUZZ_LEASE_ID" "$KEYS/subnets/${FUZZ_SUBNET/\//-}" \
    "{\"PublicIP\":\"$FUZZ_FROM\",\"PublicIPv6\":null}" >/dev/null
sleep 2

START=$(date +%s)
END=$((START + DURATION))
at() { echo $((START + DURATION * $1 / 100)); }
snmp_udp() { # ns field
    nsx "$1" awk -v f="$2" '
        /^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) if ($i == f) c = i; h = 1 } else print $c }' /proc/net/snmp
}
RCVBUF_START=$(snmp_udp "${HOST_NS[1]}" RcvbufErrors)

# ---------------------------------------------------------------------------------------------------------------------
# what runs throughout
"$JAVA" -cp "$BENCH_JAR" "$CAPTURE_MAIN" --port 9999 --netns "$NS_C1,$NS_C2,${HOST_NS[1]},${HOST_NS[2]},$NS_FUZZ" \
    >"$STATE/capture.log" 2>&1 &
CAPTURE_PID=$!
BG_PIDS[capture]=$CAPTURE_PID
if ((FUZZ_RATE > 0)); then
    ip netns exec "$NS_FUZZ" "$JAVA" -cp "$BENCH_JAR" "$FUZZ_MAIN" --target 10.168.0.2 --network 100.96.0.0/16 \
        --target-subnet 100.96.1.0/24 --victim 100.96.1.2 --from "$FUZZ_FROM" --from-subnet "$FUZZ_SUBNET" \
        --stranger "$FUZZ_STRANGER" --other-subnet 100.96.2.0/24 --other-host 10.168.0.3 --rate "$FUZZ_RATE" \
        --count 100000000000 --duration "$DURATION" --seed "$SEED" >"$STATE/fuzz.log" 2>&1 &
    FUZZ_PID=$!
    BG_PIDS[fuzz]=$FUZZ_PID
fi
ip netns exec "$NS_C2" ping -D -O -n -i 0.1 100.96.1.2 >"$STATE/ping.log" 2>&1 &
PING_PID=$!
BG_PIDS[ping]=$PING_PID
ip netns exec "$NS_C1" iperf3 -s >"$STATE/iperf-server.log" 2>&1 &
BG_PIDS[iperf-server]=$!

iperf_loop() {
    local k=0 t rc
    sleep 1
    while [[ ! -e $STATE/stop ]]; do
        t=$((END - $(date +%s) - 3))
        ((t > 30)) && t=30
        ((t >= 5)) || break
        k=$((k + 1))
        rc=0
        nsx "$NS_C2" timeout $((t + 120)) iperf3 -c 100.96.1.2 -t "$t" -b "$IPERF_RATE" -J \
            >"$STATE/iperf-$k.json" 2>&1 || rc=$?
        echo "$k $rc" >>"$STATE/iperf-runs"
    done
}
iperf_loop &
BG_PIDS[iperf]=$!

node3_churn() {
    local period=$((DURATION / 8)) ok
    ((period < 20)) && period=20
    sleep 5
    while [[ ! -e $STATE/stop ]] && (($(date +%s) + period / 2 + 15 < END)); do
        ok=1
        node_start 3 || ok=0
        echo "$(date +%s) node3 join ok=$ok" >>"$STATE/events"
        ((ok)) || echo "node3 failed to join" >>"$STATE/failures"
        sleep $((period / 2))
        [[ -z ${NODE_PID[3]:-} ]] || node_stop 3
        echo "$(date +%s) node3 leave" >>"$STATE/events"
        sleep $((period / 2))
    done
}
node3_churn &
BG_PIDS[node3]=$!

lease_churn() {
    local lease puts=0 dels=0 fails=0 s i
    lease=$(ectl lease grant 120 2>/dev/null | awk '{print $2}') || true
    while [[ ! -e $STATE/stop ]] && (($(date +%s) < END)); do
        for ((i = 0; i < 5; i++)); do
            s=$((100 + RANDOM % 100))
            if ectl put --lease="$lease" "$KEYS/subnets/100.96.$s.0-24" \
                "{\"PublicIP\":\"10.168.1.$s\",\"PublicIPv6\":null}" >/dev/null 2>&1; then
                puts=$((puts + 1))
            else
                fails=$((fails + 1))
                lease=$(ectl lease grant 120 2>/dev/null | awk '{print $2}') || true
            fi
            s=$((100 + RANDOM % 100))
            if ectl del "$KEYS/subnets/100.96.$s.0-24" >/dev/null 2>&1; then
                dels=$((dels + 1))
            else
                fails=$((fails + 1))
            fi
        done
        echo "$puts $dels $fails" >"$STATE/lease-churn"
        sleep 1
    done
}
lease_churn &
BG_PIDS[leases]=$!

sample() {
    local t rss thr fds
    t=$(($(date +%s) - START))
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$NODE1_PID/status" 2>/dev/null) || return 1
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$NODE1_PID/status" 2>/dev/null) || return 1
    fds=$(find "/proc/$NODE1_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    [[ -n $rss && -n $thr ]] || return 1
    echo "$t,$rss,$thr,$fds" >>"$STATE/samples.csv"
}

# ---------------------------------------------------------------------------------------------------------------------
# the timeline: faults at fixed points, samples every 5 s
declare -a FAULTS=("$(at 25) etcd" "$(at 55) node2")
((DURATION >= 300)) && FAULTS+=("$(at 75) etcd")
etcd_restart() {
    local t0
    t0=$(date +%s)
    stop_pid "$ETCD_PID"
    wait "$ETCD_PID" 2>/dev/null || true
    sleep 5
    etcd_start
    echo "$t0 $(date +%s) etcd restart" >>"$STATE/events"
    log "etcd restarted (down $(($(date +%s) - t0)) s)"
}
node2_restart() {
    local t0 t1
    t0=$(date +%s)
    node_stop 2
    node_start 2 || echo "node2 failed to restart" >>"$STATE/failures"
    t1=$(date +%s)
    # Until host1's node has learned the lease again, c1's replies to c2 have no route: the expected outage.
    echo "$((t0 - 1)) $((t1 + 5)) node2 restart" >>"$STATE/windows"
    echo "$t0 $t1 node2 restart" >>"$STATE/events"
    log "node2 restarted ($((t1 - t0)) s)"
}
next_sample=$START
while (($(date +%s) < END)); do
    now=$(date +%s)
    if ((now >= next_sample)); then
        sample || { echo "node1 died" >>"$STATE/failures"; log "node1 died"; break; }
        next_sample=$((next_sample + 5))
    fi
    if ((${#FAULTS[@]} > 0)); then
        read -r due what <<<"${FAULTS[0]}"
        if ((now >= due)); then
            FAULTS=("${FAULTS[@]:1}")
            case $what in
                etcd) etcd_restart ;;
                node2) node2_restart ;;
            esac
            continue
        fi
    fi
    sleep 0.5
done
sample || echo "node1 died" >>"$STATE/failures"

# ---------------------------------------------------------------------------------------------------------------------
# wind down and collect
log "winding down"
touch "$STATE/stop"
[[ -z ${FUZZ_PID:-} ]] || { stop_pid "$FUZZ_PID"; wait "$FUZZ_PID" 2>/dev/null || true; }
sleep 2   # the last pings' replies
kill -INT "$PING_PID" 2>/dev/null || true
wait "$PING_PID" 2>/dev/null || true
wait "${BG_PIDS[iperf]}" 2>/dev/null || true
wait "${BG_PIDS[node3]}" 2>/dev/null || true
wait "${BG_PIDS[leases]}" 2>/dev/null || true
[[ -z ${NODE_PID[3]:-} ]] || node_stop 3
stop_pid "${BG_PIDS[iperf-server]}"
kill -TERM "$CAPTURE_PID" 2>/dev/null || true
wait "$CAPTURE_PID" 2>/dev/null || true
RCVBUF_END=$(snmp_udp "${HOST_NS[1]}" RcvbufErrors)
for n in 1 2; do
    if [[ -n ${NODE_PID[$n]:-} ]] && kill -0 "${NODE_PID[$n]}" 2>/dev/null; then
        node_stop "$n"
    else
        echo "node$n was not running at the end" >>"$STATE/failures"
    fi
done
BG_PIDS=()
stop_pid "$ETCD_PID"
wait "$ETCD_PID" 2>/dev/null || true
ETCD_PID=""

# ---------------------------------------------------------------------------------------------------------------------
# verdict
fail=()
[[ ! -s $STATE/failures ]] || mapfile -t fail <"$STATE/failures"

# resources: median of 20-40 % of the run against the median of its last fifth
median() {
    sort -n | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) print 0
            else if (NR % 2) print v[(NR + 1) / 2]
            else print int((v[NR / 2] + v[NR / 2 + 1]) / 2)
        }'
}
window_col() { # from% to% column
    awk -F, -v a=$((DURATION * $1 / 100)) -v b=$((DURATION * $2 / 100)) -v c="$3" \
        'NR > 1 && $1 >= a && $1 <= b { print $c }' "$STATE/samples.csv" | median
}
rss0=$(window_col 20 40 2) rss1=$(window_col 80 100 2)
thr0=$(window_col 20 40 3) thr1=$(window_col 80 100 3)
fd0=$(window_col 20 40 4) fd1=$(window_col 80 100 4)
rss_max=$(awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$STATE/samples.csv")
((rss1 <= rss0 + rss0 / 10 + 16384)) || fail+=("RSS grew ${rss0} -> ${rss1} kB")
((thr1 <= thr0 + 2)) || fail+=("threads grew $thr0 -> $thr1")
((fd1 <= fd0 + 4)) || fail+=("fds grew $fd0 -> $fd1")

# ping: every sequence number without a reply, placed in time by its 'no answer yet' line
read -r ping_sent ping_recv < <(awk '/packets transmitted/ { print $1, $4 }' "$STATE/ping.log")
ping_sent=${ping_sent:-0} ping_recv=${ping_recv:-0}
read -r lost_in lost_out < <(awk -v windows="$(cat "$STATE/windows")" '
    BEGIN { n = split(windows, w, "\n"); for (i = 1; i <= n; i++) { split(w[i], f, " "); ws[i] = f[1]; we[i] = f[2] } }
    match($0, /icmp_seq=[0-9]+/) {
        seq = substr($0, RSTART + 9, RLENGTH - 9) + 0
        ts = substr($1, 2) + 0
        if ($0 ~ /no answer yet/) { if (!(seq in when)) when[seq] = ts } else replied[seq] = 1
        if (seq > max) max = seq
    }
    END {
        for (s in when) {
            if (s in replied || s > max - 30) continue   # late but answered, or still in flight at the end
            inw = 0
            for (i = 1; i <= n; i++) if (ws[i] != "" && when[s] >= ws[i] && when[s] <= we[i]) inw = 1
            if (inw) a++; else b++
        }
        print a + 0, b + 0
    }' "$STATE/ping.log")
((lost_out == 0)) || fail+=("$lost_out pings lost outside the restart of host2's node")
((ping_recv > 0)) || fail+=("no ping reply at all")

# iperf3
iperf_ok=0 iperf_bad=0 iperf_bytes=0
rates=()
if [[ -f $STATE/iperf-runs ]]; then
    while read -r k rc; do
        if ((rc == 0)) && jq -e '.end.sum_received.bytes' "$STATE/iperf-$k.json" >/dev/null 2>&1; then
            iperf_ok=$((iperf_ok + 1))
            iperf_bytes=$((iperf_bytes + $(jq -r '.end.sum_received.bytes | floor' "$STATE/iperf-$k.json")))
            rates+=("$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$STATE/iperf-$k.json")")
        else
            iperf_bad=$((iperf_bad + 1))
        fi
    done <"$STATE/iperf-runs"
fi
iperf_median=$(printf '%s\n' "${rates[@]:-0}" | median)
((iperf_bad == 0)) || fail+=("$iperf_bad iperf3 runs failed")
((iperf_ok > 0)) || fail+=("no iperf3 run completed")

# fuzz: nothing hostile anywhere; host1's node counted at least what was sent per reason (less overflows)
hostile=$(awk '/^capture total: hostile/ { print $4 }' "$STATE/capture.log")
[[ -n $hostile ]] || { hostile=0; fail+=("the capture printed no summary"); }
((hostile == 0)) || fail+=("$hostile hostile datagrams reached a capture socket")
overflows=$((RCVBUF_END - RCVBUF_START))
fuzz_sent=0 fuzz_short="" fuzz_note="no fuzzer"
if ((FUZZ_RATE > 0)); then
    fuzz_sent=$(awk '/^total / { print $2 }' "$STATE/fuzz.log")
    fuzz_sent=${fuzz_sent:-0}
    ((fuzz_sent > 0)) || fail+=("the fuzzer sent nothing")
    stats=$(grep '^stats ' "$STATE/node1.log" | tail -1)
    expected=$(grep '^expected drops:' "$STATE/fuzz.log" | sed 's/^expected drops: *//; s/;.*//')
    [[ -n $expected && -n $stats ]] || fail+=("no drop figures from the fuzzer or from host1's node")
    for kv in $expected; do
        reason=${kv%%=*} want=${kv#*=}
        got=$(grep -o "$reason=[0-9]*" <<<"$stats" | head -1 | cut -d= -f2)
        got=${got:-0}
        ((got + overflows >= want)) || fuzz_short+=" $reason $got<$want"
    done
    if [[ -z $fuzz_short ]]; then
        fuzz_note="every drop counted"
    else
        fail+=("host1's node counted too few:$fuzz_short")
        fuzz_note="counted too few:$fuzz_short"
    fi
fi

read -r churn_puts churn_dels churn_fails <"$STATE/lease-churn" 2>/dev/null || true
joins=$(grep -c 'node3 join ok=1' "$STATE/events" || true)
leaves=$(grep -c 'node3 leave' "$STATE/events" || true)
etcd_restarts=$(grep -c 'etcd restart' "$STATE/events" || true)
node_restarts=$(grep -c 'node2 restart' "$STATE/events" || true)
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)

verdict=PASS
((${#fail[@]} == 0)) || verdict=FAIL
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
gb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
line="SOAK $verdict $DURATION s (${cpu:-unknown CPU}, $(nproc) cores): host1's node RSS $(mib "$rss0")"
line+=" -> $(mib "$rss1") MiB"
line+=" (max $(mib "$rss_max")), threads $thr0 -> $thr1, fds $fd0 -> $fd1; ping c2->c1 $ping_recv/$ping_sent"
line+=" (lost $lost_in during $node_restarts node restart, $lost_out otherwise);"
line+=" iperf3 $iperf_ok/$((iperf_ok + iperf_bad))"
line+=" runs ok, $(gb "$iperf_bytes") GB, median ${iperf_median:-0} Mb/s; churn: host3 joined $joins and left $leaves"
line+=" times, ${churn_puts:-0} lease puts and ${churn_dels:-0} deletes; etcd restarted $etcd_restarts, node2"
line+=" restarted $node_restarts; fuzz: $fuzz_sent datagrams at host1's node ($FUZZ_RATE/s, seed $SEED), $fuzz_note,"
line+=" $hostile reached a socket, $overflows socket overflows"
for f in "${fail[@]}"; do echo "[soak] FAILED: $f" >&2; done
echo "$line" | tee "$STATE/verdict"
[[ $verdict == PASS ]]
