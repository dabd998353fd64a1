# Shared by the project's scripts: install what is missing, from Debian's packages only.
# shellcheck shell=bash

# ensure_tools CMD:PACKAGE ... — installs PACKAGE when CMD is not on the PATH (or, for an absolute path, not there).
ensure_tools() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    if [ "${cmd#/}" != "$cmd" ]; then
      [ -x "$cmd" ] || missing+=("$pkg")
    elif ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The JDK 17 and Maven the build needs, plus the kernel tools and the etcd server the tests and the demo use;
# iptables and nftables for overlayd's traffic rules, and the reference CNI plugins (bridge, host-local) its CNI test
# configures from subnet.env.
ensure_build_tools() {
  ensure_tools java:openjdk-17-jdk-headless javac:openjdk-17-jdk-headless mvn:maven \
    ip:iproute2 bridge:iproute2 ping:iputils-ping modprobe:kmod etcd:etcd-server etcdctl:etcd-client ethtool:ethtool \
    iptables:iptables iptables-restore:iptables iptables-save:iptables nft:nftables \
    /usr/lib/cni/bridge:containernetworking-plugins /usr/lib/cni/host-local:containernetworking-plugins
  # The TUN driver is usually built in or loaded on demand; try to load it, the tests say if it is missing.
  [ -e /dev/net/tun ] || modprobe tun 2>/dev/null || true
}
