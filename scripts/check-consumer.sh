#!/usr/bin/env bash
# Builds it/consumer, a project outside the reactor that uses overlay4j as a user would (imports overlay4j-bom,
# depends on overlay-udp and overlay-etcd, tests with overlay-testing), against freshly installed artifacts; runs its
# test (two embedded nodes in network namespaces lease from a real etcd and carry a datagram); runs its runtime jars
# as Java modules (it/consumer/modular/ModularSmoke.java); and checks that its dependency tree has exactly one netty
# version and one grpc version, and that without the BOM it would not.
#
# Usage: scripts/check-consumer.sh [--repo DIR]
#   --repo DIR  a temporary local repository that already holds the installed artifacts (scripts/test.sh passes the
#               one scripts/check-reproducible.sh --install-to filled). Without it the script installs the BOM, the
#               parent and the library modules into a temporary local repository of its own first. Never ~/.m2:
#               every worktree and build on this machine shares it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

repo=
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    *) echo "usage: $0 [--repo DIR]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/overlay4j-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT
temp_maven_settings "${repo:-$work/repo}" > "$work/settings.xml"
mvn_opts=(-B -ntp -Dstyle.color=never -s "$work/settings.xml" -Dmaven.repo.local="${repo:-$work/repo}")
version=$(awk '/<artifactId>overlay4j-bom<\/artifactId>/ {found = 1}
               found && /<version>/ {gsub(/.*<version>|<\/version>.*/, ""); print; exit}' overlay4j-bom/pom.xml)

if [ -z "$repo" ]; then
  mapfile -t published < <(published_modules)
  echo "installing overlay4j $version into a temporary local repository"
  mvn "${mvn_opts[@]}" -q -DskipTests -pl "$(IFS=,; echo "overlay4j-bom,${published[*]}")" -am install
fi

cd it/consumer
echo "building it/consumer against overlay4j $version"
mvn "${mvn_opts[@]}" -Doverlay4j.version="$version" clean verify dependency:tree -DoutputFile=target/tree.txt \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=target/modules
# The same jars as Java modules: module names, qualified exports, the backends found through the modules'
# uses/provides clauses, and (as root) a node in a namespace.
java -p target/modules --add-modules ALL-MODULE-PATH modular/ModularSmoke.java
mvn "${mvn_opts[@]}" -q -Doverlay4j.version="$version" -DnoBom dependency:tree -DoutputFile=target/tree-without-bom.txt

# The versions of a group's artifacts in a dependency:tree output (lines like "+- io.netty:netty-buffer:jar:V:compile").
versions() {
  grep -oE "[ -]$1:[^: ]+:jar(:[^: ]+)?:[^: ]+:[a-z]+" "$2" | grep -vE "$3" | awk -F: '{print $(NF-1)}' | sort -u
}
# netty-tcnative and netty-jni-util have release lines of their own; they are not netty versions.
netty=$(versions io.netty target/tree.txt 'netty-tcnative|netty-jni-util')
grpc=$(versions io.grpc target/tree.txt '^$')
netty_without=$(versions io.netty target/tree-without-bom.txt 'netty-tcnative|netty-jni-util')
echo "with overlay4j-bom: netty $(echo $netty), grpc $(echo $grpc); without it: netty $(echo $netty_without)"
if [ "$(echo "$netty" | wc -l)" -ne 1 ] || [ -z "$netty" ]; then
  echo "it/consumer must see exactly one netty version, got: $(echo $netty)" >&2
  exit 1
fi
if [ "$(echo "$grpc" | wc -l)" -ne 1 ] || [ -z "$grpc" ]; then
  echo "it/consumer must see exactly one grpc version, got: $(echo $grpc)" >&2
  exit 1
fi
if [ "$(echo "$netty_without" | wc -l)" -lt 2 ]; then
  echo "without overlay4j-bom it/consumer sees one netty version ($(echo $netty_without)): the check above proves" \
    "nothing any more; if the libraries converge on their own now, drop the -DnoBom check" >&2
  exit 1
fi
echo "it/consumer: built, tested, one netty ($netty) and one grpc ($grpc) version"
