#!/usr/bin/env bash
# overlay-bench/e2e.sh -- end-to-end throughput harness for overlay4j.
#
# Builds the flannel walk-through topology (two hosts joined by a veth underlay, a docker0 bridge
# and one container per host) in network namespaces that this script creates, and measures
# container-to-container TCP/UDP throughput and ping latency through:
#   overlay4j  the library's userspace flannel `udp` backend (io.overlay4j.examples.OverlayHostMain) as
#              shipped, no flags: offloads on (TUN TSO + coalescing, UDP GSO/GRO; same wire format)
#   overlay4j-plain    the same with --offloads=false: one packet per system call
#   overlay4j-offload  the same with --offloads (the default now; kept to compare with older jars)
#   overlay4j-vxlan    overlay4j's kernel vxlan backend (OverlayHostMain --backend vxlan): flannel.1 over rtnetlink
#   overlay4j-vxlan-userspace  the same vxlan backend on overlay4j's userspace data plane (--vxlan-dataplane=userspace)
#   overlay4j-host-gw  overlay4j's host-gw backend (OverlayHostMain --backend host-gw): routes over rtnetlink
#   vxlan      the kernel's VXLAN device, programmed exactly as flannel's vxlan backend does it
#   host-gw    plain routing between the hosts, no encapsulation
#   veth       the raw underlay between the two hosts (the ceiling)
#   overlayd   the daemon as shipped (overlayd/target/overlayd-<version>.tar.gz, its bin/overlayd launcher),
#              with etcd on the underlay and flanneld's defaults (udp backend, forward rules in iptables)
#   c-proxy    a reference: overlay-bench/reference/udp-poll-proxy.c, a flannel udp data plane in C shaped like
#              flanneld's (one thread, one poll, one packet per system call), built here with gcc
# Run `e2e.sh --help` for the options. Needs root. Every namespace it creates carries the per-run
# prefix o4je<pid>- and is removed on exit, also on failure or Ctrl-C.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly ALL_MODES="overlay4j,overlay4j-plain,vxlan,overlay4j-vxlan,overlay4j-vxlan-userspace,host-gw,overlay4j-host-gw,veth,overlayd,c-proxy"
readonly MAIN_CLASS="io.overlay4j.examples.OverlayHostMain"
readonly OVERLAY_NET="100.96.0.0/16"
readonly UL_IF="eth0"             # underlay veth name inside each host namespace
readonly IPERF_PORT=5201
readonly PING_COUNT=20
readonly PING_INTERVAL=0.05
readonly PREFIX="o4je$$"

usage() {
    cat <<EOF
Usage: sudo overlay-bench/e2e.sh [options]

End-to-end throughput of overlay4j next to the kernel's own paths, measured between two
"containers" (100.96.1.2 -> 100.96.2.3) of the flannel walk-through topology, built in network
namespaces named ${PREFIX%$$}<pid>-{host1,host2,c1,c2}. Each mode is set up, measured and torn down in
turn; the modes alternate within each repetition (rotated order per repetition).

Modes (comma-separated, default: $ALL_MODES):
  overlay4j  userspace flannel udp backend as shipped (no flags): '$MAIN_CLASS' runs in
             each host namespace (TUN flannel0, UDP 8285); container MTU 1472. Offloads are on by
             default: TUN with virtio headers (TSO reads, coalesced writes), UDP GSO sends and GRO
             receives; still one inner packet per datagram on the wire
  overlay4j-plain  the same with --offloads=false: one packet per read, send, receive and write
  overlay4j-offload  the same with --offloads (same as the default; for jars older than the default)
  overlay4j-vxlan  overlay4j's vxlan backend ('$MAIN_CLASS --backend vxlan'): the kernel's
             flannel.1 set up over rtnetlink as flanneld does; the same kernel path as 'vxlan'; MTU 1450
  overlay4j-vxlan-userspace  the same vxlan network on overlay4j's userspace data plane
             ('--backend vxlan --vxlan-dataplane=userspace'): TUN flannel.1, VXLAN to UDP 8472 built in
             the JVM (offloads on, as overlay4j's); the same wire format as 'vxlan'; MTU 1450
  overlay4j-host-gw  overlay4j's host-gw backend ('--backend host-gw'): the routes of 'host-gw', set
             over rtnetlink; MTU 1500
  vxlan      kernel VXLAN as flannel's vxlan backend programs it (flannel.1, VNI 1, port 8472,
             <subnet>/32 address, neighbour + FDB + 'via <subnet> onlink' routes); MTU 1450
  host-gw    routes '100.96.M.0/24 via <peer host IP>', no encapsulation; MTU 1500
  veth       iperf3/ping host1 -> host2 (10.168.0.2 -> 10.168.0.3) over the bare underlay
  overlayd   the daemon as a host runs it: the distribution's bin/overlayd in each host namespace with
             only -etcd-endpoints (etcd in host1 on the underlay) and -subnet-file; the interface from the
             default route, the backend from the network config (udp), FORWARD rules in iptables; MTU 1472
  c-proxy    a reference for userspace latency: overlay-bench/reference/udp-poll-proxy.c (built with gcc
             into the state dir), the flannel udp format from a C loop shaped like flanneld's proxy: one
             thread, one poll(2) over TUN flannel0 and UDP 8285, one packet per system call, the TTL
             decremented; flannel's TUN set-up (<subnet>/32, 100.96.0.0/16 dev flannel0); MTU 1472.
             flanneld cannot be built on a machine without Go modules; this stands in for its data plane

Options:
  --modes LIST          modes to run (default: $ALL_MODES)
  --repeat N            repetitions of every mode (default: 3)
  --duration S          TCP test length in seconds (default: \$DURATION or 10)
  --udp-rates LIST      offered UDP rates, iperf3 -b syntax (default: 500M,1G,2G)
  --udp-duration S      length of each UDP test in seconds (default: 5)
  --udp-buffer SIZE     iperf3 -w socket buffer for the UDP tests (default: 4M; 'default' = iperf3's
                        own, ~208 KiB, where the receiving iperf3 socket overflows whenever the
                        2-core machine is busy, and the loss shown is the benchmark's, not the path's)
  --quick               smoke test: duration 2, repeat 1, one UDP rate (500M), UDP tests 2 s;
                        explicit options win over --quick
  --jar PATH            overlay4j examples jar (default: examples/target/overlay4j-examples.jar
                        under the repo root); built with 'mvn -B -q -DskipTests package' if missing
  --no-build            never run Maven; overlay4j fails if the jar is missing
  --overlayd-dist PATH  overlayd distribution tarball (default: overlayd/target/overlayd-*.tar.gz under the
                        repo root); built with Maven if missing
  --ready-timeout S     seconds to wait for READY from each overlay4j process (default: 30)
  --alt LABEL=JAR       another overlay4j jar for A/B runs in the same session: a mode written
                        MODE@LABEL (e.g. overlay4j@before) runs MODE with that jar; repeatable
  --alt-rev LABEL=REV   as --alt, with the examples jar built from git revision REV of this repository (a
                        temporary worktree, 'mvn -B -q -DskipTests package -pl examples -am'), e.g.
                        'pre9=dc53334' for the path before issue 9 (run it as overlay4j-offload@pre9)
  --alt-opts LABEL=OPTS extra JVM flags for MODE@LABEL (e.g. 'spin=-Doverlay4j.forwarder.spinMicros=50');
                        a label may have options and no jar (then the default jar); repeatable
                        The label 'killed' needs neither: overlay4j-vxlan@killed and overlay4j-host-gw@killed
                        SIGKILL the JVMs once the path works and measure the kernel objects they left
  --state-dir DIR       where state, logs and raw results go (default: /tmp/overlay4j-e2e-<prefix>)
  --no-install          do not apt-get install missing tools (iperf3, iputils-ping, jq, ...)
  --syscalls            overlay4j modes: count the JVMs' system calls per thread with 'perf trace -s'
                        during the warm ping and the TCP test (runs/rep<R>-<mode>/*.syscalls.txt);
                        tracing slows the path down, so treat that run's speed as void
  --cleanup-stale       delete namespaces o4je<pid>-* left by runs whose process is gone, then exit
  -h, --help            this text

Environment: DURATION (TCP seconds), JAVA (java binary, default: java), JAVA_OPTS (extra JVM flags).

Measurements per mode and repetition (iperf3 server in c2, or host2 for veth):
  ping    ping -c $PING_COUNT -i $PING_INTERVAL: median and average RTT (ms)
  TCP     iperf3 -t DURATION: Gb/s received (sum_received) and retransmits
  UDP     iperf3 -u -b RATE -l 1400 -t UDP_DURATION -w 4M per rate: Gb/s received and loss %
  CPU     overlay4j only: CPU seconds (utime+stime of both java processes) per gigabit moved by TCP,
          and per gigabit received in each UDP test

UDP loss by cause (overlay4j modes; deltas over each UDP test, in packets): TUN tx drops on host1's
flannel0 (the egress thread fell behind), UDP receive-buffer errors in host2 (/proc/net/snmp
RcvbufErrors: the overlay socket overflowed) and in c2 (the receiving iperf3's socket overflowed).

Output: a markdown table of median (min-max) per mode and metric, with each mode's TCP throughput
relative to kernel vxlan from the same run (paired per repetition), on stdout and in
<state-dir>/summary.md; raw per-run numbers in <state-dir>/results.csv and results.json, iperf3
JSON and logs under <state-dir>/runs/. Exit status: 0 if every run succeeded, 1 if any failed.
EOF
}

log() { printf '[e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { printf '[e2e %(%H:%M:%S)T] WARNING: %s\n' -1 "$*" >&2; }
die() { printf '[e2e] ERROR: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# options
opt_modes=$ALL_MODES opt_repeat="" opt_duration="" opt_udp_rates="" opt_udp_duration="" opt_quick=0
declare -A ALT_JAR=() ALT_OPTS=() ALT_REV=()
opt_syscalls=0 opt_udp_buffer=4M opt_jar="" opt_dist="" opt_build=1 opt_state_dir="" opt_install=1 opt_ready_timeout=30 opt_cleanup_stale=0
while (($#)); do
    arg=$1
    shift
    if [[ $arg == --*=* ]]; then
        set -- "${arg#*=}" "$@"
        arg=${arg%%=*}
    fi
    need_value() { (($# > 0)) && [[ -n $1 ]] || die "$arg needs a value (see --help)"; }
    case $arg in
        --modes) need_value "$@"; opt_modes=$1; shift ;;
        --repeat) need_value "$@"; opt_repeat=$1; shift ;;
        --duration) need_value "$@"; opt_duration=$1; shift ;;
        --udp-rates) need_value "$@"; opt_udp_rates=$1; shift ;;
        --udp-duration) need_value "$@"; opt_udp_duration=$1; shift ;;
        --udp-buffer) need_value "$@"; opt_udp_buffer=$1; shift ;;
        --quick) opt_quick=1 ;;
        --jar) need_value "$@"; opt_jar=$1; shift ;;
        --no-build) opt_build=0 ;;
        --overlayd-dist) need_value "$@"; opt_dist=$1; shift ;;
        --ready-timeout) need_value "$@"; opt_ready_timeout=$1; shift ;;
        --alt)
            need_value "$@"
            [[ $1 =~ ^([a-z0-9_-]+)=(.+)$ ]] || die "--alt wants LABEL=JAR (label: a-z 0-9 _ -): $1"
            ALT_JAR[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
            shift ;;
        --alt-rev)
            need_value "$@"
            [[ $1 =~ ^([a-z0-9_-]+)=(.+)$ ]] || die "--alt-rev wants LABEL=REV (label: a-z 0-9 _ -): $1"
            ALT_REV[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
            shift ;;
        --alt-opts)
            need_value "$@"
            [[ $1 =~ ^([a-z0-9_-]+)=(.*)$ ]] || die "--alt-opts wants LABEL=OPTS (label: a-z 0-9 _ -): $1"
            ALT_OPTS[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
            shift ;;
        --state-dir) need_value "$@"; opt_state_dir=$1; shift ;;
        --no-install) opt_install=0 ;;
        --syscalls) opt_syscalls=1 ;;
        --cleanup-stale) opt_cleanup_stale=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $arg (see --help)" ;;
    esac
done

if ((opt_quick)); then
    REPEAT=${opt_repeat:-1}
    DURATION=${opt_duration:-2}
    UDP_RATES=${opt_udp_rates:-500M}
    UDP_DURATION=${opt_udp_duration:-2}
else
    REPEAT=${opt_repeat:-3}
    DURATION=${opt_duration:-${DURATION:-10}}
    UDP_RATES=${opt_udp_rates:-500M,1G,2G}
    UDP_DURATION=${opt_udp_duration:-5}
fi
READY_TIMEOUT=$opt_ready_timeout
JAVA=${JAVA:-java}
JAVA_OPTS=${JAVA_OPTS:-}

is_posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_posint "$REPEAT" || die "--repeat must be a positive integer: $REPEAT"
is_posint "$DURATION" || die "--duration must be a positive integer (seconds): $DURATION"
is_posint "$UDP_DURATION" || die "--udp-duration must be a positive integer (seconds): $UDP_DURATION"
is_posint "$READY_TIMEOUT" || die "--ready-timeout must be a positive integer (seconds): $READY_TIMEOUT"

IFS=, read -r -a MODES <<<"$opt_modes"
((${#MODES[@]} > 0)) || die "--modes is empty"
declare -A seen=()
for m in "${MODES[@]}"; do
    case ${m%%@*} in overlay4j | overlay4j-plain | overlay4j-offload | overlay4j-vxlan | overlay4j-vxlan-userspace | overlay4j-host-gw | vxlan | host-gw | veth | overlayd | c-proxy) ;; *) die "unknown mode '$m' (modes: $ALL_MODES)" ;; esac
    if [[ $m == *@* ]]; then
        label=${m#*@}
        if [[ $label == killed ]]; then
            [[ ${m%%@*} == overlay4j-vxlan || ${m%%@*} == overlay4j-host-gw ]] \
                || die "mode '$m': @killed is for the kernel backends' modes (overlay4j-vxlan, overlay4j-host-gw)"
            continue
        fi
        [[ -n ${ALT_JAR[$label]+x}${ALT_REV[$label]+x}${ALT_OPTS[$label]+x} ]] \
            || die "mode '$m': no --alt, --alt-rev or --alt-opts for label '$label'"
        [[ ${m%%@*} == overlay4j* ]] || die "mode '$m': only overlay4j modes take a @label"
    fi
    [[ -z ${seen[$m]:-} ]] || die "mode '$m' given twice"
    seen[$m]=1
done
UDP_BUF_ARGS=()
if [[ $opt_udp_buffer != default ]]; then
    [[ $opt_udp_buffer =~ ^[0-9]+[KM]?$ ]] || die "bad --udp-buffer '$opt_udp_buffer' (e.g. 4M, or 'default')"
    UDP_BUF_ARGS=(-w "$opt_udp_buffer")
fi
IFS=, read -r -a RATES <<<"$UDP_RATES"
for r in "${RATES[@]}"; do
    [[ $r =~ ^[0-9]+(\.[0-9]+)?[KMG]?$ ]] || die "bad UDP rate '$r' (iperf3 -b syntax, e.g. 500M, 1G)"
done

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces, veth, bridges, vxlan, TUN)"

# ---------------------------------------------------------------------------------------------
# stale namespaces of earlier runs (pid gone)
ns_list() { ip netns list 2>/dev/null | awk '{print $1}'; }

stale_namespaces() {
    local ns pid
    while read -r ns; do
        [[ $ns =~ ^o4je([0-9]+)- ]] || continue
        pid=${BASH_REMATCH[1]}
        if [[ $pid != "$$" ]] && ! kill -0 "$pid" 2>/dev/null; then echo "$ns"; fi
    done < <(ns_list)
}

# Kill every process inside namespace $1 (TERM, then KILL after a grace period).
ns_kill_all() {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
    [[ -n ${pids// /} ]] || return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
        [[ -n ${pids// /} ]] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
}

if ((opt_cleanup_stale)); then
    mapfile -t stale < <(stale_namespaces)
    if ((${#stale[@]} == 0)); then
        log "no stale o4je<pid>-* namespaces"
        exit 0
    fi
    for ns in "${stale[@]}"; do
        log "removing stale namespace $ns"
        ns_kill_all "$ns"
        ip netns del "$ns" || warn "could not delete $ns"
    done
    exit 0
fi

if ns_list | grep -q "^${PREFIX}-"; then
    die "namespaces with this run's prefix ${PREFIX}- already exist and were not created by this run: $(ns_list | grep "^${PREFIX}-" | tr '\n' ' ')"
fi
mapfile -t stale < <(stale_namespaces)
if ((${#stale[@]} > 0)); then
    warn "namespaces of earlier runs are still there (${stale[*]}); they may disturb the numbers."
    warn "remove them with: $0 --cleanup-stale"
fi

# ---------------------------------------------------------------------------------------------
# tools
# Whether a mode runs overlay4j's own node processes.
is_o4j() { [[ ${1%%@*} == overlay4j || ${1%%@*} == overlay4j-* || $1 == overlayd ]]; }
WANT_O4J=0
for m in "${MODES[@]}"; do if is_o4j "$m" && [[ $m != overlayd ]]; then WANT_O4J=1; fi; done
WANT_OVERLAYD=0
if [[ " ${MODES[*]} " == *" overlayd "* ]]; then WANT_OVERLAYD=1; fi
WANT_CPROXY=0
if [[ " ${MODES[*]} " == *" c-proxy "* ]]; then WANT_CPROXY=1; fi
JAR=""
NEED_BUILD=0
if ((WANT_O4J)); then
    JAR=${opt_jar:-$REPO_ROOT/examples/target/overlay4j-examples.jar}
    [[ $JAR == /* ]] || JAR=$PWD/$JAR
    if [[ ! -f $JAR && -z $opt_jar ]] && ((opt_build)); then NEED_BUILD=1; fi
fi
DIST=""
if ((WANT_OVERLAYD)); then
    DIST=${opt_dist:-$(ls "$REPO_ROOT"/overlayd/target/overlayd-*.tar.gz 2>/dev/null | head -1 || true)}
    if [[ -z $DIST && -z $opt_dist ]] && ((opt_build)); then NEED_BUILD=1; fi
    [[ -z $DIST || $DIST == /* ]] || DIST=$PWD/$DIST
fi

ensure_tools() {
    local -A pkg_of=([ip]=iproute2 [bridge]=iproute2 [ss]=iproute2 [iperf3]=iperf3 [ping]=iputils-ping
        [jq]=jq [timeout]=coreutils [awk]=mawk [getconf]=libc-bin [tac]=coreutils)
    local missing=() c
    if ((WANT_O4J || WANT_OVERLAYD)); then pkg_of[$JAVA]=openjdk-17-jre-headless; fi
    if ((WANT_OVERLAYD)); then pkg_of[etcd]=etcd-server pkg_of[etcdctl]=etcd-client pkg_of[iptables]=iptables; fi
    if ((opt_syscalls)); then pkg_of[perf]=linux-perf; fi
    if ((WANT_CPROXY)); then pkg_of[gcc]=gcc; fi
    if ((NEED_BUILD)); then pkg_of[mvn]=maven pkg_of[javac]=openjdk-17-jdk-headless; fi
    for c in "${!pkg_of[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("${pkg_of[$c]}")
    done
    ((${#missing[@]} == 0)) && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    ((opt_install)) || die "missing tools; install: apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}
ensure_tools
ping -V 2>&1 | grep -qi iputils || warn "ping is not iputils-ping; '-i $PING_INTERVAL' may not work"
CLK_TCK=$(getconf CLK_TCK)
IPERF_VERSION=$(iperf3 --version 2>/dev/null | head -1 | awk '{print $2}')

# ---------------------------------------------------------------------------------------------
# state dir
STATE_DIR=${opt_state_dir:-${TMPDIR:-/tmp}/overlay4j-e2e-$PREFIX}
mkdir -p "$STATE_DIR/runs"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
readonly STATE_FILE="$STATE_DIR/state"   # "netns <name>" per namespace that currently exists
readonly CSV="$STATE_DIR/results.csv"
: >"$STATE_FILE"
echo "rep,mode,metric,value" >"$CSV"
: >"$STATE_DIR/failures.log"

# ---------------------------------------------------------------------------------------------
# c-proxy preflight: build the reference proxy
CPROXY_BIN="$STATE_DIR/udp-poll-proxy"
CPROXY_UNAVAILABLE=""
if ((WANT_CPROXY)); then
    gcc -O2 -Wall -o "$CPROXY_BIN" "$SCRIPT_DIR/reference/udp-poll-proxy.c" 2>"$STATE_DIR/gcc.log" \
        || CPROXY_UNAVAILABLE="gcc failed; see $STATE_DIR/gcc.log"
fi

# The examples jar of git revision $2 for label $1, built in a temporary worktree; prints its path.
build_at_rev() {
    local label=$1 rev=$2 commit wt="$STATE_DIR/rev-$1" jar="$STATE_DIR/overlay4j-$1.jar" log="$STATE_DIR/mvn-rev-$1.log"
    commit=$(git -C "$REPO_ROOT" rev-parse --verify -q "$rev^{commit}") \
        || die "--alt-rev $label: '$rev' is not a commit of $REPO_ROOT"
    git -C "$REPO_ROOT" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git -C "$REPO_ROOT" worktree add -q --detach "$wt" "$commit" >"$log" 2>&1 \
        || die "--alt-rev $label: git worktree add failed, see $log"
    log "building $label from ${commit:0:12} (mvn -B -q -DskipTests package -pl examples -am; log: $log)"
    if ! (cd "$wt" && mvn -B -q -DskipTests package -pl examples -am) >>"$log" 2>&1; then
        git -C "$REPO_ROOT" worktree remove --force "$wt" 2>/dev/null || true
        die "--alt-rev $label: the build of ${commit:0:12} failed, see $log"
    fi
    cp "$wt/examples/target/overlay4j-examples.jar" "$jar" \
        || die "--alt-rev $label: ${commit:0:12} built no examples/target/overlay4j-examples.jar"
    git -C "$REPO_ROOT" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git -C "$REPO_ROOT" worktree prune 2>/dev/null || true
    echo "$jar"
}

# ---------------------------------------------------------------------------------------------
# overlay4j preflight: jar and main class
O4J_UNAVAILABLE=""
if ((WANT_O4J)); then
    if ((NEED_BUILD)); then
        log "building $JAR (mvn -B -q -DskipTests package in $REPO_ROOT; log: $STATE_DIR/mvn-build.log)"
        (cd "$REPO_ROOT" && mvn -B -q -DskipTests package) >"$STATE_DIR/mvn-build.log" 2>&1 ||
            warn "maven build failed, see $STATE_DIR/mvn-build.log"
    fi
    class_entry="${MAIN_CLASS//.//}.class"
    if [[ ! -f $JAR ]]; then
        O4J_UNAVAILABLE="jar not found: $JAR"
    elif ! grep -qaF "$class_entry" "$JAR"; then
        # zip entry names are stored uncompressed, so grep finds them without unzip
        O4J_UNAVAILABLE="main class $MAIN_CLASS ($class_entry) is not in $JAR"
    fi
    for label in "${!ALT_REV[@]}"; do
        [[ -z ${ALT_JAR[$label]+x} ]] || die "label '$label' has both --alt and --alt-rev"
        ((opt_build)) || die "--alt-rev $label: builds with Maven, which --no-build forbids"
        ALT_JAR[$label]=$(build_at_rev "$label" "${ALT_REV[$label]}") || exit 2
    done
    for label in "${!ALT_JAR[@]}"; do
        [[ -f ${ALT_JAR[$label]} ]] || die "--alt $label: jar not found: ${ALT_JAR[$label]}"
        grep -qaF "$class_entry" "${ALT_JAR[$label]}" || die "--alt $label: $MAIN_CLASS is not in ${ALT_JAR[$label]}"
    done
    if [[ -n $O4J_UNAVAILABLE ]]; then
        warn "mode overlay4j cannot run: $O4J_UNAVAILABLE"
        warn "  (build with 'mvn -B -DskipTests package' in $REPO_ROOT, pass --jar, or use --modes vxlan,host-gw,veth)"
        warn "  overlay4j is reported as FAILED; the other modes still run."
    fi
fi

# overlayd preflight: the distribution, unpacked once into the state dir
OVERLAYD_UNAVAILABLE="" OVERLAYD_BIN=""
if ((WANT_OVERLAYD)); then
    if ((NEED_BUILD)) && [[ -z $DIST ]]; then
        log "building the overlayd distribution (mvn -B -q -DskipTests package -pl overlayd -am; log: $STATE_DIR/mvn-overlayd.log)"
        (cd "$REPO_ROOT" && mvn -B -q -DskipTests package -pl overlayd -am) >"$STATE_DIR/mvn-overlayd.log" 2>&1 ||
            warn "maven build failed, see $STATE_DIR/mvn-overlayd.log"
        DIST=$(ls "$REPO_ROOT"/overlayd/target/overlayd-*.tar.gz 2>/dev/null | head -1 || true)
    fi
    if [[ -z $DIST || ! -f $DIST ]]; then
        OVERLAYD_UNAVAILABLE="overlayd distribution not found: ${DIST:-overlayd/target/overlayd-*.tar.gz}"
    else
        mkdir -p "$STATE_DIR/overlayd"
        tar -xzf "$DIST" -C "$STATE_DIR/overlayd"
        OVERLAYD_BIN=$(ls "$STATE_DIR"/overlayd/overlayd-*/bin/overlayd 2>/dev/null | head -1 || true)
        [[ -x $OVERLAYD_BIN ]] || OVERLAYD_UNAVAILABLE="no bin/overlayd in $DIST"
    fi
    [[ -z $OVERLAYD_UNAVAILABLE ]] || warn "mode overlayd cannot run: $OVERLAYD_UNAVAILABLE; it is reported as FAILED"
fi

# ---------------------------------------------------------------------------------------------
# namespaces
H1="$PREFIX-host1" H2="$PREFIX-host2" C1="$PREFIX-c1" C2="$PREFIX-c2"
readonly H1 H2 C1 C2
declare -A HOST_NS=([1]=$H1 [2]=$H2) HOST_IP=([1]=10.168.0.2 [2]=10.168.0.3)

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

state_del_line() {
    local tmp="$STATE_FILE.tmp.$BASHPID"
    grep -vxF "$1" "$STATE_FILE" >"$tmp" || true
    mv -f "$tmp" "$STATE_FILE"
}

ns_create() {
    local ns=$1
    if ns_list | grep -qxF "$ns"; then
        die "namespace $ns already exists and was not created by this run; refusing to touch it"
    fi
    ip netns add "$ns"
    echo "netns $ns" >>"$STATE_FILE"
    nsx "$ns" ip link set lo up
    # IPv4 only; keep IPv6 router solicitations / DAD out of the measurements
    nsx "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
    # br_netfilter (if loaded on this machine) would run bridged frames through iptables: keep it out
    nsx "$ns" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 > "$f"; done' 2>/dev/null || true
}

# Remove every namespace recorded in the state file (processes inside are killed first).
topo_down() {
    local ns
    [[ -f $STATE_FILE ]] || return 0
    while read -r _ ns; do
        [[ -n $ns && $ns == "$PREFIX"-* ]] || continue
        ns_kill_all "$ns"
        ip netns del "$ns" 2>/dev/null || true
        if ns_list | grep -qxF "$ns"; then
            warn "could not delete namespace $ns"
        else
            state_del_line "netns $ns"
        fi
    done < <(tac "$STATE_FILE")
}

# The walk-through topology; $1 = MTU of the container veths.
topo_up() {
    local cmtu=$1 n c ns
    for ns in "$H1" "$H2" "$C1" "$C2"; do ns_create "$ns"; done
    # underlay: host1 eth0 <-> host2 eth0
    ip -n "$H1" link add "$UL_IF" mtu 1500 type veth peer name "$UL_IF" netns "$H2"
    for n in 1 2; do
        ns=${HOST_NS[$n]}
        ip -n "$ns" link set "$UL_IF" mtu 1500 up
        ip -n "$ns" addr add "${HOST_IP[$n]}/24" dev "$UL_IF"
        nsx "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
        ip -n "$ns" link add docker0 type bridge
        ip -n "$ns" addr add "100.96.$n.1/24" dev docker0
        ip -n "$ns" link set docker0 up
    done
    # containers: c1 100.96.1.2 behind host1's docker0, c2 100.96.2.3 behind host2's docker0
    for n in 1 2; do
        ns=${HOST_NS[$n]}
        if ((n == 1)); then c=$C1; else c=$C2; fi
        ip -n "$c" link add eth0 type veth peer name "veth-c$n" netns "$ns"
        ip -n "$c" link set eth0 mtu "$cmtu" up
        ip -n "$ns" link set "veth-c$n" mtu "$cmtu" master docker0 up
        ip -n "$c" addr add "100.96.$n.$((n == 1 ? 2 : 3))/24" dev eth0
        ip -n "$c" route add default via "100.96.$n.1"
    done
}

# ---------------------------------------------------------------------------------------------
# modes
vxlan_up() {
    local n m mac
    declare -A vtep_mac=()
    for n in 1 2; do
        ip -n "${HOST_NS[$n]}" link add flannel.1 type vxlan id 1 local "${HOST_IP[$n]}" dev "$UL_IF" \
            dstport 8472 nolearning
        ip -n "${HOST_NS[$n]}" link set flannel.1 mtu 1450
        ip -n "${HOST_NS[$n]}" addr add "100.96.$n.0/32" dev flannel.1
        ip -n "${HOST_NS[$n]}" link set flannel.1 up
        mac=$(ip -n "${HOST_NS[$n]}" -j link show dev flannel.1 | jq -r '.[0].address')
        [[ $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || { echo "cannot read flannel.1 MAC in host$n: $mac" >&2; return 1; }
        vtep_mac[$n]=$mac
    done
    for n in 1 2; do
        m=$((3 - n))
        ip -n "${HOST_NS[$n]}" neigh replace "100.96.$m.0" lladdr "${vtep_mac[$m]}" dev flannel.1 nud permanent
        bridge -n "${HOST_NS[$n]}" fdb append "${vtep_mac[$m]}" dev flannel.1 dst "${HOST_IP[$m]}" self permanent
        ip -n "${HOST_NS[$n]}" route replace "100.96.$m.0/24" via "100.96.$m.0" dev flannel.1 onlink
    done
}

hostgw_up() {
    local n m
    for n in 1 2; do
        m=$((3 - n))
        ip -n "${HOST_NS[$n]}" route replace "100.96.$m.0/24" via "${HOST_IP[$m]}" dev "$UL_IF"
    done
}

# c-proxy: the reference C proxy in each host, then flannel's TUN set-up on the flannel0 it created
cproxy_up() {
    [[ -z $CPROXY_UNAVAILABLE ]] || { echo "c-proxy unavailable: $CPROXY_UNAVAILABLE" >&2; return 1; }
    local n m deadline
    for n in 1 2; do
        m=$((3 - n))
        nsx "${HOST_NS[$n]}" "$CPROXY_BIN" flannel0 "${HOST_IP[$n]}" 8285 "100.96.$m.0/24" "${HOST_IP[$m]}" \
            >"$RUN_DIR/c-proxy-host$n.log" 2>&1 </dev/null &
    done
    for n in 1 2; do
        deadline=$((SECONDS + 10))
        until ip -n "${HOST_NS[$n]}" link show flannel0 >/dev/null 2>&1; do
            ((SECONDS < deadline)) || { echo "no flannel0 in host$n; see $RUN_DIR/c-proxy-host$n.log" >&2; return 1; }
            sleep 0.1
        done
        ip -n "${HOST_NS[$n]}" link set flannel0 mtu 1472 up
        ip -n "${HOST_NS[$n]}" addr add "100.96.$n.0/32" dev flannel0
        ip -n "${HOST_NS[$n]}" route replace 100.96.0.0/16 dev flannel0
    done
}

declare -A O4J_PID=() O4J_LAUNCH=()   # JVM pid (signals, CPU) and launcher pid ($!, for wait)

proc_state() { awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null || true; }
# whether process $1 runs (exists and is no zombie)
proc_alive() { [[ -d /proc/$1 && $(proc_state "$1") != Z ]]; }
# waits up to $2 tenths of a second for process $1 to end; fails if it still runs
wait_exit() {
    local i
    for ((i = 0; i < $2; i++)); do
        proc_alive "$1" || return 0
        sleep 0.1
    done
    ! proc_alive "$1"
}
proc_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# utime+stime of the JIT compiler threads of JVM $1 (thread names "C1 CompilerThre..." and "C2 CompilerThre...")
jit_ticks() {
    local t sum=0 comm
    for t in /proc/"$1"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        [[ $comm == C[12]\ CompilerThre* ]] || continue
        sum=$((sum + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "$t/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}

# `ip netns exec` (iproute2 6.1) forks and waits, so the JVM is a child of $!: follow children.
java_pid() {
    local pid=$1 kids
    while [[ $(cat "/proc/$pid/comm" 2>/dev/null) != java ]]; do
        kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}') || true
        [[ -n $kids ]] || break
        pid=$kids
    done
    echo "$pid"
}

O4J_EXTRA=""

o4j_start() {
    local n=$1 ns=${HOST_NS[$1]} out="$RUN_DIR/overlay4j-host$1" jar=$JAR opts=$JAVA_OPTS
    if [[ $MODE == overlayd ]]; then
        # the daemon as shipped: its launcher and flanneld's defaults; only where etcd is and a subnet file per host
        nsx "$ns" "$OVERLAYD_BIN" -etcd-endpoints="http://${HOST_IP[1]}:2379" \
            -subnet-file="$STATE_DIR/host$n-subnet.env" >"$out.stdout" 2>"$out.stderr" </dev/null &
        O4J_LAUNCH[$n]=$!
        O4J_PID[$n]=$!
        log "  overlayd host$n: started pid ${O4J_PID[$n]} (stdout/stderr: $out.*)"
        return 0
    fi
    if [[ -n $LABEL ]]; then
        jar=${ALT_JAR[$LABEL]:-$JAR}
        opts="$opts ${ALT_OPTS[$LABEL]:-}"
    fi
    # shellcheck disable=SC2086
    nsx "$ns" "$JAVA" $opts -cp "$jar" "$MAIN_CLASS" \
        --network "$OVERLAY_NET" \
        --allocator-file "$STATE_DIR/leases.json" \
        --iface "$UL_IF" \
        --public-ip "${HOST_IP[$n]}" \
        --subnet-file "$STATE_DIR/host$n-subnet.env" \
        --prefer-subnet "100.96.$n.0/24" $O4J_EXTRA \
        >"$out.stdout" 2>"$out.stderr" </dev/null &
    O4J_LAUNCH[$n]=$!
    O4J_PID[$n]=$!
    log "  overlay4j host$n: started pid ${O4J_PID[$n]} (stdout/stderr: $out.*)"
}

o4j_wait_ready() {
    local n=$1 pid=${O4J_PID[$1]} out="$RUN_DIR/overlay4j-host$1" deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if grep -q '^READY' "$out.stdout" 2>/dev/null || grep -q ' overlayd is ready$' "$out.stderr" 2>/dev/null; then
            O4J_PID[$n]=$(java_pid "$pid")
            [[ $(cat "/proc/${O4J_PID[$n]}/comm" 2>/dev/null) == java ]] ||
                warn "overlay4j host$n: no process named java under pid $pid; CPU numbers may be wrong"
            log "  overlay4j host$n: READY"
            return 0
        fi
        if [[ ! -d /proc/$pid || $(proc_state "$pid") == Z ]]; then
            local rc=0
            wait "$pid" || rc=$?
            unset "O4J_PID[$n]" "O4J_LAUNCH[$n]"
            echo "overlay4j host$n exited with status $rc before READY; last stderr lines:" >&2
            tail -n 20 "$out.stderr" | sed 's/^/    | /' >&2
            return 1
        fi
        sleep 0.2
    done
    echo "overlay4j host$n printed no READY within ${READY_TIMEOUT}s; last stderr lines:" >&2
    tail -n 20 "$out.stderr" | sed 's/^/    | /' >&2
    return 1
}

# etcd for the overlayd mode, in host1 on the underlay (its process goes with the namespace at teardown)
etcd_up() {
    local url="http://${HOST_IP[1]}:2379" deadline=$((SECONDS + 20))
    nsx "$H1" etcd --name e2e --data-dir "$RUN_DIR/etcd-data" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster e2e=http://127.0.0.1:2380 \
        >"$RUN_DIR/etcd.log" 2>&1 </dev/null &
    until ETCDCTL_API=3 nsx "$H1" etcdctl --endpoints "$url" endpoint health >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "etcd did not come up; see $RUN_DIR/etcd.log" >&2; return 1; }
        sleep 0.2
    done
    ETCDCTL_API=3 nsx "$H1" etcdctl --endpoints "$url" put /coreos.com/network/config \
        "{\"Network\":\"$OVERLAY_NET\",\"Backend\":{\"Type\":\"udp\"}}" >/dev/null
}

overlayd_up() {
    [[ -z $OVERLAYD_UNAVAILABLE ]] || { echo "overlayd unavailable: $OVERLAYD_UNAVAILABLE" >&2; return 1; }
    etcd_up
    local n
    for n in 1 2; do
        # a default route, as a host has (overlayd picks its interface from it), and last run's subnet.env, so
        # each daemon asks for the subnet its docker0 is addressed from (as after a restart)
        ip -n "${HOST_NS[$n]}" route replace default via "${HOST_IP[$((3 - n))]}" dev "$UL_IF"
        printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=100.96.%d.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n' \
            "$OVERLAY_NET" "$n" >"$STATE_DIR/host$n-subnet.env"
    done
    o4j_start 1
    o4j_wait_ready 1
    o4j_start 2
    o4j_wait_ready 2
}

o4j_up() {
    [[ -z $O4J_UNAVAILABLE ]] || { echo "overlay4j unavailable: $O4J_UNAVAILABLE" >&2; return 1; }
    rm -f "$STATE_DIR/leases.json" "$STATE_DIR/host1-subnet.env" "$STATE_DIR/host2-subnet.env"
    o4j_start 1
    o4j_wait_ready 1
    o4j_start 2
    o4j_wait_ready 2
}

# MODE@killed: SIGKILL both JVMs once the path works, leaving the kernel objects they programmed in place, so the
# measurement sees the same kernel state without the resident JVMs (a control for the kernel backends' rows).
o4j_kill() {
    local n pid
    for n in "${!O4J_PID[@]}"; do
        pid=${O4J_PID[$n]}
        kill -KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 50 || true
        wait "${O4J_LAUNCH[$n]}" 2>/dev/null || true
        unset "O4J_PID[$n]" "O4J_LAUNCH[$n]"
    done
    echo "  killed both JVMs; their kernel objects stay until the topology is torn down" >&2
}

# SIGTERM both JVMs and wait for them (they remove their own devices); KILL after 15 s.
o4j_stop() {
    local n pid rc dev
    for n in "${!O4J_PID[@]}"; do kill -TERM "${O4J_PID[$n]}" 2>/dev/null || true; done
    for n in "${!O4J_PID[@]}"; do
        pid=${O4J_PID[$n]}
        if ! wait_exit "$pid" 150; then
            warn "overlay4j host$n (pid $pid) ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        # the launcher (`ip netns exec`) waits for the JVM and passes its exit status on
        rc=0
        wait "${O4J_LAUNCH[$n]}" 2>/dev/null || rc=$?
        ((rc == 0)) || warn "overlay4j host$n exited with status $rc after SIGTERM (expected 0)"
        for dev in flannel0 flannel.1; do
            if ip -n "${HOST_NS[$n]}" link show "$dev" >/dev/null 2>&1; then
                warn "overlay4j host$n left $dev behind after exiting"
            fi
        done
        if ip -n "${HOST_NS[$n]}" route show via "${HOST_IP[$((3 - n))]}" 2>/dev/null | grep -q '^100\.96\.'; then
            warn "overlay4j host$n left its host-gw route behind after exiting"
        fi
        unset "O4J_PID[$n]" "O4J_LAUNCH[$n]"
    done
}

# ---------------------------------------------------------------------------------------------
# measurements
SRV_PID=""

iperf_server_start() {
    local ns=$1 log=$2 i
    nsx "$ns" iperf3 -s -1 -p "$IPERF_PORT" >"$log" 2>&1 </dev/null &
    SRV_PID=$!
    for ((i = 0; i < 100; i++)); do
        if nsx "$ns" ss -Hltn "sport = :$IPERF_PORT" 2>/dev/null | grep -q .; then return 0; fi
        kill -0 "$SRV_PID" 2>/dev/null || { echo "iperf3 server in $ns died: $(cat "$log")" >&2; return 1; }
        sleep 0.05
    done
    echo "iperf3 server in $ns is not listening after 5 s" >&2
    return 1
}

iperf_server_stop() {
    [[ -n $SRV_PID ]] || return 0
    wait_exit "$SRV_PID" 50 || true
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

# iperf3 client: $1 client ns, $2 server ns, $3 dst, $4 json out, rest: extra iperf3 args
iperf_run() {
    local cli=$1 srv=$2 dst=$3 json=$4 secs rc=0 err
    shift 4
    secs=$DURATION
    [[ " $* " == *" -u "* ]] && secs=$UDP_DURATION
    iperf_server_start "$srv" "${json%.json}.server.log"
    timeout -k 5 $((secs + 30)) ip netns exec "$cli" iperf3 -c "$dst" -p "$IPERF_PORT" -J "$@" \
        >"$json" 2>"${json%.json}.stderr" || rc=$?
    iperf_server_stop
    err=$(jq -r '.error // empty' "$json" 2>/dev/null) || err="unparsable JSON"
    if ((rc != 0)) || [[ -n $err ]]; then
        echo "iperf3 $* to $dst failed (exit $rc): ${err:-$(tail -n 3 "${json%.json}.stderr")}" >&2
        return 1
    fi
}

emit() { echo "$REP,$MODE,$1,$2" >>"$CSV"; }

wait_reachable() {
    local cli=$1 dst=$2 limit=$3 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        nsx "$cli" ping -n -q -c 1 -W 1 "$dst" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "$dst is not reachable from $cli within ${limit}s" >&2
    {
        local ns
        for ns in "$H1" "$H2"; do
            echo "== $ns"; ip -n "$ns" -br addr; ip -n "$ns" route
        done
    } >"$RUN_DIR/unreachable-diag.txt" 2>&1 || true
    echo "  (addresses and routes: $RUN_DIR/unreachable-diag.txt)" >&2
    return 1
}

# With --syscalls, for overlay4j modes: count the JVMs' system calls per thread into $RUN_DIR/$1.syscalls.txt
# while the caller measures; stop with trace_stop.
TRACE_PID=""
trace_start() {
    local pids
    ((opt_syscalls)) && is_o4j "$MODE" || return 0
    pids=$(IFS=,; echo "${O4J_PID[*]}")
    perf trace -s -p "$pids" -o "$RUN_DIR/$1.syscalls.txt" >/dev/null 2>&1 &
    TRACE_PID=$!
    sleep 1   # perf attaches to every thread first
}
trace_stop() {
    [[ -n $TRACE_PID ]] || return 0
    kill -INT "$TRACE_PID" 2>/dev/null || true
    wait "$TRACE_PID" 2>/dev/null || true
    TRACE_PID=""
}

# ping $1 -> $2; $3: metric prefix (ping: right after start; ping_warm: after the TCP and UDP tests)
measure_ping() {
    local cli=$1 dst=$2 what=${3:-ping} out="$RUN_DIR/${3:-ping}.txt" stats
    nsx "$cli" ping -n -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$dst" >"$out" 2>&1 || true
    stats=$(sed -n 's/.*time=\([0-9.]*\).*/\1/p' "$out" | sort -g | awk '
        { v[NR] = $1; s += $1 }
        END { if (NR == 0) exit 1
              med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.4f %.4f %d\n", med, s / NR, NR }') || { echo "ping $dst: no replies" >&2; return 1; }
    read -r med avg got <<<"$stats"
    emit "${what}_median_ms" "$med"
    emit "${what}_avg_ms" "$avg"
    emit "${what}_received" "$got"
    log "  $(printf '%-9s' "$what") median ${med} ms, avg ${avg} ms ($got/$PING_COUNT replies)"
}

# The sum over the overlay4j JVMs of $1 (proc_ticks or jit_ticks) of each pid; 0 for other modes.
o4j_ticks() {
    local n s=0
    if is_o4j "$MODE"; then
        for n in "${!O4J_PID[@]}"; do s=$((s + $("$1" "${O4J_PID[$n]}"))); done
    fi
    echo "$s"
}

measure_tcp() {
    local cli=$1 srv=$2 dst=$3 json="$RUN_DIR/tcp.json" t0 t1 j0 j1 gbps retr bytes
    t0=$(o4j_ticks proc_ticks) j0=$(o4j_ticks jit_ticks)
    trace_start tcp
    iperf_run "$cli" "$srv" "$dst" "$json" -t "$DURATION"
    trace_stop
    t1=$(o4j_ticks proc_ticks) j1=$(o4j_ticks jit_ticks)
    read -r gbps retr bytes < <(jq -r '[.end.sum_received.bits_per_second / 1e9,
        (.end.sum_sent.retransmits // 0), .end.sum_received.bytes] | map(tostring) | join(" ")' "$json")
    emit tcp_gbps "$gbps"
    emit tcp_retrans "$retr"
    emit tcp_bytes "$bytes"
    if is_o4j "$MODE"; then
        local cpu_s per_gbit jit_s jit_per_gbit
        cpu_s=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }')
        per_gbit=$(awk -v c="$cpu_s" -v b="$bytes" 'BEGIN { if (b > 0) printf "%.4f", c / (b * 8 / 1e9); else print "nan" }')
        jit_s=$(awk -v t=$((j1 - j0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }')
        jit_per_gbit=$(awk -v c="$jit_s" -v b="$bytes" 'BEGIN { if (b > 0) printf "%.4f", c / (b * 8 / 1e9); else print "nan" }')
        emit java_cpu_s "$cpu_s"
        emit java_cpu_s_per_gbit "$per_gbit"
        emit java_jit_cpu_s "$jit_s"
        emit java_jit_cpu_s_per_gbit "$jit_per_gbit"
        log "  TCP       $(printf '%.2f' "$gbps") Gb/s, $retr retransmits; java CPU ${cpu_s} s = ${per_gbit} s/Gbit (JIT compiler threads ${jit_s} s)"
    else
        log "  TCP       $(printf '%.2f' "$gbps") Gb/s, $retr retransmits"
    fi
}

# UDP receive-buffer overflows so far in namespace $1 (/proc/net/snmp is per namespace).
udp_rcvbuf_errors() {
    nsx "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 }
        else { for (i = 1; i <= NF; i++) if (k[i] == "RcvbufErrors") v = $i } } END { print v + 0 }' \
        /proc/net/snmp 2>/dev/null || echo 0
}
# Packets the kernel dropped at $1's flannel0 because the TUN queue was full (0 without flannel0).
tun_tx_dropped() {
    local v
    v=$(ip -n "$1" -s -j link show flannel0 2>/dev/null | jq -r '.[0].stats64.tx.dropped // 0' 2>/dev/null) || v=0
    echo "${v:-0}"
}

measure_udp() {
    local cli=$1 srv=$2 dst=$3 rate=$4 json="$RUN_DIR/udp-$4.json" rx sent loss jitter t0 u0 c0 p0 p1
    t0=$(tun_tx_dropped "$H1") u0=$(udp_rcvbuf_errors "$H2") c0=$(udp_rcvbuf_errors "$srv") p0=$(o4j_ticks proc_ticks)
    iperf_run "$cli" "$srv" "$dst" "$json" -u -b "$rate" -l 1400 -t "$UDP_DURATION" "${UDP_BUF_ARGS[@]}"
    p1=$(o4j_ticks proc_ticks)
    emit "udp_${rate}_drop_tun_tx" $(($(tun_tx_dropped "$H1") - t0))
    emit "udp_${rate}_drop_underlay_rcvbuf" $(($(udp_rcvbuf_errors "$H2") - u0))
    emit "udp_${rate}_drop_receiver_rcvbuf" $(($(udp_rcvbuf_errors "$srv") - c0))
    # iperf3 >= 3.13 reports sum_sent/sum_received for UDP; 3.12 (Debian 12) only `sum`, whose
    # loss counters come from the server, so received = sent bits x (1 - loss).
    read -r rx sent loss jitter < <(jq -r '
        (.end.sum_received // .end.sum) as $r | (.end.sum_sent // .end.sum) as $s |
        ($r.lost_percent // 0) as $loss |
        [ (if .end.sum_received then $r.bits_per_second
           else $s.bits_per_second * (1 - $loss / 100) end) / 1e9,
          $s.bits_per_second / 1e9, $loss, ($r.jitter_ms // 0) ] | map(tostring) | join(" ")' "$json")
    emit "udp_${rate}_rx_gbps" "$rx"
    emit "udp_${rate}_sent_gbps" "$sent"
    emit "udp_${rate}_loss_pct" "$loss"
    emit "udp_${rate}_jitter_ms" "$jitter"
    local cpu=""
    if is_o4j "$MODE"; then
        # Per gigabit received, over the whole iperf3 run (its start and the server's report included).
        local cpu_s per_gbit
        cpu_s=$(awk -v t=$((p1 - p0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }')
        per_gbit=$(awk -v c="$cpu_s" -v g="$rx" -v d="$UDP_DURATION" \
            'BEGIN { if (g > 0) printf "%.4f", c / (g * d); else print "nan" }')
        emit "udp_${rate}_java_cpu_s_per_gbit" "$per_gbit"
        cpu="; java CPU ${cpu_s} s = ${per_gbit} s/Gbit"
    fi
    log "  UDP $(printf '%-5s' "$rate") $(printf '%.2f' "$rx") Gb/s received ($(printf '%.2f' "$sent") sent), loss $(printf '%.2f' "$loss") %$cpu"
}

# ---------------------------------------------------------------------------------------------
# one mode, one repetition; runs in its own subshell so that `set -e` applies and a failure
# ends only this run.
run_teardown() {
    local rc=$?
    set +e
    iperf_server_stop
    ((${#O4J_PID[@]} == 0)) || o4j_stop
    topo_down
    exit "$rc"
}

run_one() {
    MODE=$1 REP=$2
    BASE=${MODE%%@*} LABEL=""
    if [[ $MODE == *@* ]]; then LABEL=${MODE#*@}; fi
    RUN_DIR="$STATE_DIR/runs/rep$REP-$MODE"
    mkdir -p "$RUN_DIR"
    trap run_teardown EXIT
    local cmtu=1500 cli=$C1 srv=$C2 dst=100.96.2.3 reach=10 rate
    case $BASE in
        overlay4j | overlay4j-plain | overlay4j-offload | overlayd) cmtu=1472 reach=30 ;;
        c-proxy) cmtu=1472 ;;
        overlay4j-vxlan | overlay4j-vxlan-userspace) cmtu=1450 reach=30 ;;
        overlay4j-host-gw) reach=30 ;;
        vxlan) cmtu=1450 ;;
        veth) cli=$H1 srv=$H2 dst=10.168.0.3 ;;
    esac
    O4J_EXTRA=""
    case $BASE in
        overlay4j-offload) O4J_EXTRA="--offloads" ;;
        overlay4j-plain) O4J_EXTRA="--offloads=false" ;;
        overlay4j-vxlan) O4J_EXTRA="--backend vxlan" ;;
        overlay4j-vxlan-userspace) O4J_EXTRA="--backend vxlan --vxlan-dataplane=userspace" ;;
        overlay4j-host-gw) O4J_EXTRA="--backend host-gw" ;;
    esac
    if is_o4j "$MODE" && [[ $MODE != overlayd && -n $O4J_UNAVAILABLE ]]; then
        echo "overlay4j unavailable: $O4J_UNAVAILABLE" >&2
        return 1
    fi
    topo_up "$cmtu"
    case $BASE in
        overlayd) overlayd_up ;;
        overlay4j*) o4j_up ;;
        vxlan) vxlan_up ;;
        host-gw) hostgw_up ;;
        c-proxy) cproxy_up ;;
        veth) : ;;
    esac
    wait_reachable "$cli" "$dst" "$reach"
    if [[ $LABEL == killed ]]; then
        o4j_kill
        wait_reachable "$cli" "$dst" "$reach"
    fi
    measure_ping "$cli" "$dst"
    measure_tcp "$cli" "$srv" "$dst"
    for rate in "${RATES[@]}"; do measure_udp "$cli" "$srv" "$dst" "$rate"; done
    trace_start ping_warm
    measure_ping "$cli" "$dst" ping_warm
    trace_stop
    if is_o4j "$MODE"; then o4j_stop; fi
    emit load1 "$(cut -d' ' -f1 /proc/loadavg)"   # other work on the machine shows up here
    emit ok 1
}

# ---------------------------------------------------------------------------------------------
# parent: cleanup on any exit
RUN_PID=""
cleanup() {
    local rc=$?
    trap '' INT TERM
    set +e
    if [[ -n $RUN_PID ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    topo_down
    local left
    left=$(ns_list | grep "^${PREFIX}-" | tr '\n' ' ')
    if [[ -n $left ]]; then
        warn "namespaces still present after cleanup: $left"
        rc=3
    fi
    exit "$rc"
}
on_signal() {
    warn "interrupted by SIG$1; cleaning up"
    exit $((128 + $2))
}
trap cleanup EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
HEADER="$(date -u '+%Y-%m-%d %H:%M UTC') | kernel $(uname -r) | ${CPU_MODEL:-unknown CPU}, $(nproc) cores | load $(cut -d' ' -f1-3 /proc/loadavg) | repetitions $REPEAT | TCP ${DURATION} s, UDP ${UDP_DURATION} s at ${UDP_RATES} (1400 B, buffer ${opt_udp_buffer}) | ping ${PING_COUNT}x${PING_INTERVAL}s | iperf3 ${IPERF_VERSION}"
log "run $PREFIX: modes ${MODES[*]}, state dir $STATE_DIR"
log "$HEADER"

failed=0
for ((rep = 1; rep <= REPEAT; rep++)); do
    nm=${#MODES[@]}
    for ((k = 0; k < nm; k++)); do
        mode=${MODES[$(((k + rep - 1) % nm))]}
        log "rep $rep/$REPEAT: $mode"
        set +e
        (set -e; run_one "$mode" "$rep") 2> >(tee "$STATE_DIR/runs/rep$rep-$mode.log" >&2) &
        RUN_PID=$!
        wait "$RUN_PID"
        rc=$?
        RUN_PID=""
        set -e
        topo_down   # in case the run died without its own teardown
        if ((rc != 0)); then
            failed=1
            echo "$rep,$mode,ok,0" >>"$CSV"
            echo "rep $rep $mode: exit $rc (log: $STATE_DIR/runs/rep$rep-$mode.log, files: $STATE_DIR/runs/rep$rep-$mode/)" >>"$STATE_DIR/failures.log"
            warn "rep $rep $mode FAILED (exit $rc); log in $STATE_DIR/runs/rep$rep-$mode.log"
        fi
    done
done

# ---------------------------------------------------------------------------------------------
# summary: median (min-max) over the successful repetitions of each mode
summary_tsv() {
    # prints: mode metric median min max n; plus metric tcp_vs_vxlan (per-repetition pairs)
    awk -F, '
        NR == 1 { next }
        $3 == "ok" { ok[$1 "," $2] = $4; next }
        { val[$1 "," $2 "," $3] = $4; reps[$1] = 1; key[$2 "," $3] = 1 }
        END {
            for (rk in val) {
                split(rk, p, ",")
                if (ok[p[1] "," p[2]] != 1) continue
                print p[2] "\t" p[3] "\t" val[rk]
                if (p[3] == "tcp_gbps" && p[2] != "vxlan" && ok[p[1] ",vxlan"] == 1 && val[p[1] ",vxlan,tcp_gbps"] > 0)
                    print p[2] "\t" "tcp_vs_vxlan" "\t" val[rk] / val[p[1] ",vxlan,tcp_gbps"]
                if (p[3] == "tcp_gbps" && p[2] == "vxlan")
                    print p[2] "\t" "tcp_vs_vxlan" "\t" 1
                # overlay4j kernel backends against the scripted setup of the same kernel path, same repetition
                if (p[3] == "tcp_gbps" && p[2] ~ /^overlay4j-(vxlan|host-gw)$/) {
                    k = substr(p[2], 11)
                    if (ok[p[1] "," k] == 1 && val[p[1] "," k ",tcp_gbps"] > 0)
                        print p[2] "\t" "tcp_vs_scripted" "\t" val[rk] / val[p[1] "," k ",tcp_gbps"]
                }
            }
        }' "$CSV" | sort -t$'\t' -k1,1 -k2,2 -k3,3g | awk -F'\t' '
        function flush() {
            if (n == 0) return
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%s\t%s\t%.6g\t%.6g\t%.6g\t%d\n", cm, ck, med, v[1], v[n], n
        }
        { if ($1 != cm || $2 != ck) { flush(); cm = $1; ck = $2; n = 0 } v[++n] = $3 }
        END { flush() }'
}

SUMMARY_TSV="$STATE_DIR/summary.tsv"
summary_tsv >"$SUMMARY_TSV"

fmt_cell() { # mode metric decimals
    awk -F'\t' -v m="$1" -v k="$2" -v d="$3" '
        $1 == m && $2 == k {
            f = "%." d "f"
            if ($6 == 1 || sprintf(f, $4) == sprintf(f, $5)) printf f, $3
            else printf f " (" f "–" f ")", $3, $4, $5
            found = 1
        }
        END { if (!found) printf "–" }' "$SUMMARY_TSV"
}

ok_runs() { awk -F, -v m="$1" '$2 == m && $3 == "ok" && $4 == 1 { n++ } END { print n + 0 }' "$CSV"; }

{
    echo "overlay4j e2e: $HEADER"
    echo
    row="| metric |"
    sep="|---|"
    for m in "${MODES[@]}"; do row+=" $m |"; sep+="---|"; done
    echo "$row"
    echo "$sep"
    print_row() { # label metric decimals
        local r="| $1 |" m cell
        for m in "${MODES[@]}"; do
            if (($(ok_runs "$m") == 0)); then cell="FAILED"; else cell=$(fmt_cell "$m" "$2" "$3"); fi
            r+=" $cell |"
        done
        echo "$r"
    }
    print_row "TCP Gb/s" tcp_gbps 2
    if [[ " ${MODES[*]} " == *" vxlan "* ]]; then
        print_row "TCP vs kernel vxlan (same run, per rep)" tcp_vs_vxlan 2
    fi
    if [[ " ${MODES[*]} " == *" overlay4j-vxlan "* || " ${MODES[*]} " == *" overlay4j-host-gw "* ]]; then
        print_row "TCP vs the scripted kernel mode (overlay4j-X / X, same rep)" tcp_vs_scripted 2
    fi
    print_row "TCP retransmits" tcp_retrans 0
    for r in "${RATES[@]}"; do
        print_row "UDP $r offered: Gb/s sent (iperf3 sender limit if < offered)" "udp_${r}_sent_gbps" 2
        print_row "UDP $r offered: Gb/s received" "udp_${r}_rx_gbps" 2
        print_row "UDP $r offered: loss %" "udp_${r}_loss_pct" 2
        print_row "UDP $r loss cause: host1 flannel0 TUN queue full (packets)" "udp_${r}_drop_tun_tx" 0
        print_row "UDP $r loss cause: host2 underlay socket overflow (packets)" "udp_${r}_drop_underlay_rcvbuf" 0
        print_row "UDP $r loss cause: receiving iperf3 socket overflow (packets)" "udp_${r}_drop_receiver_rcvbuf" 0
    done
    print_row "ping median ms" ping_median_ms 3
    print_row "ping avg ms" ping_avg_ms 3
    print_row "ping median ms, after the TCP/UDP tests (JIT-compiled)" ping_warm_median_ms 3
    print_row "ping avg ms, after the TCP/UDP tests (JIT-compiled)" ping_warm_avg_ms 3
    if ((WANT_O4J || WANT_OVERLAYD)); then
        print_row "overlay4j CPU s/Gbit (both JVMs, TCP)" java_cpu_s_per_gbit 3
        print_row "… of which the JIT compiler threads, s/Gbit" java_jit_cpu_s_per_gbit 3
        for r in "${RATES[@]}"; do
            print_row "overlay4j CPU s/Gbit (both JVMs, UDP $r offered, per Gbit received)" "udp_${r}_java_cpu_s_per_gbit" 3
        done
    fi
    r="| runs ok |"
    for m in "${MODES[@]}"; do r+=" $(ok_runs "$m")/$REPEAT |"; done
    echo "$r"
    echo
    echo "Cells: median (min–max) over the successful repetitions. Container MTU: overlay4j, overlay4j-plain, overlay4j-offload, overlayd and c-proxy 1472, vxlan, overlay4j-vxlan and overlay4j-vxlan-userspace 1450, host-gw, overlay4j-host-gw and veth 1500."
    loads=$(awk -F, '$3 == "load1" { printf "%s%s", sep, $4; sep = ", " }' "$CSV")
    [[ -z $loads ]] || echo "1-min load average after each run: $loads on $(nproc) cores (iperf3 client and server alone add about 2; more means other work competed)."
    [[ " ${MODES[*]} " == *" vxlan "* ]] || echo "No TCP ratio to kernel vxlan: vxlan was not among the modes."
    if [[ -n $O4J_UNAVAILABLE ]]; then echo "overlay4j FAILED: $O4J_UNAVAILABLE"; fi
} >"$STATE_DIR/summary.md"

# results.json: metadata, raw rows and the summary
jq -n --arg header "$HEADER" --arg prefix "$PREFIX" \
    --rawfile csv "$CSV" --rawfile tsv "$SUMMARY_TSV" \
    --argjson repeat "$REPEAT" --argjson duration "$DURATION" --argjson udp_duration "$UDP_DURATION" \
    --arg udp_rates "$UDP_RATES" --arg modes "$opt_modes" '
    def num: if test("^-?[0-9.eE+-]+$") then tonumber else . end;
    { header: $header, run: $prefix, repeat: $repeat, tcp_duration_s: $duration,
      udp_duration_s: $udp_duration, udp_rates: ($udp_rates | split(",")), modes: ($modes | split(",")),
      runs: [ $csv | split("\n")[1:][] | select(length > 0) | split(",")
              | {rep: (.[0] | tonumber), mode: .[1], metric: .[2], value: (.[3] | num)} ],
      summary: ([ $tsv | split("\n")[] | select(length > 0) | split("\t")
                  | {mode: .[0], metric: .[1], median: (.[2] | num), min: (.[3] | num), max: (.[4] | num), n: (.[5] | tonumber)} ]
                | group_by(.mode) | map({key: .[0].mode, value: (map({key: .metric, value: del(.mode, .metric)}) | from_entries)})
                | from_entries) }' >"$STATE_DIR/results.json"

echo
cat "$STATE_DIR/summary.md"
echo
echo "Raw per-run numbers: $CSV and $STATE_DIR/results.json; iperf3 JSON and logs: $STATE_DIR/runs/"
if ((failed)); then
    echo "Some runs FAILED, see $STATE_DIR/failures.log"
    exit 1
fi
exit 0
