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
    iptables:iptables iptables-restore:iptables iptables-save:iptables nft:nftables unzip:unzip \
    /usr/lib/cni/bridge:containernetworking-plugins /usr/lib/cni/host-local:containernetworking-plugins
  # The TUN driver is usually built in or loaded on demand; try to load it, the tests say if it is missing.
  [ -e /dev/net/tun ] || modprobe tun 2>/dev/null || true
}

# The artifactIds of the modules overlay4j publishes: the root pom's modules, except the BOM (a module too) and those
# whose pom sets maven.deploy.skip (examples, benchmarks, test-only modules).
published_modules() {
  local m
  for m in $(sed -n 's:.*<module>\(.*\)</module>.*:\1:p' pom.xml); do
    [ "$m" = overlay4j-bom ] && continue
    grep -q '<maven.deploy.skip>true</maven.deploy.skip>' "$m/pom.xml" && continue
    sed -n '/<\/parent>/,$p' "$m/pom.xml" | grep -m 1 -o '<artifactId>[^<]*' | cut -d '>' -f 2
  done
}

# The io.overlay4j artifactIds that overlay4j-bom/pom.xml manages.
bom_artifacts() {
  awk '/<dependency>/ {g = ""; a = ""}
       /<groupId>/ {g = $0; gsub(/.*<groupId>|<\/groupId>.*/, "", g)}
       /<artifactId>/ {a = $0; gsub(/.*<artifactId>|<\/artifactId>.*/, "", a)}
       /<\/dependency>/ && g == "io.overlay4j" {print a}' overlay4j-bom/pom.xml
}

# temp_maven_settings REPO — prints a Maven settings.xml for builds whose local repository is REPO, a temporary
# directory, instead of the shared ~/.m2/repository: artifacts installed there stay there. Released artifacts
# missing in REPO are copied from ~/.m2/repository (used as a file:// remote repository, releases only, so no stale
# SNAPSHOT can come from it) and otherwise downloaded from Maven Central as usual.
temp_maven_settings() {
  local m2=${OVERLAY4J_M2_REPOSITORY:-$HOME/.m2/repository} repo
  repo="<id>user-m2</id><url>file://$m2</url>
          <releases><enabled>true</enabled><checksumPolicy>ignore</checksumPolicy></releases>
          <snapshots><enabled>false</enabled></snapshots>"
  cat <<XML
<settings>
  <localRepository>$1</localRepository>
  <profiles>
    <profile>
      <id>user-m2</id>
      <repositories><repository>$repo</repository></repositories>
      <pluginRepositories><pluginRepository>$repo</pluginRepository></pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles><activeProfile>user-m2</activeProfile></activeProfiles>
</settings>
XML
}
