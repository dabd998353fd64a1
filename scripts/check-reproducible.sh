#!/usr/bin/env bash
# Checks what overlay4j publishes:
#  - the BOM (overlay4j-bom) lists exactly the published modules: every module of the root pom that does not set
#    maven.deploy.skip;
#  - each published module builds a jar, a sources jar and a javadoc jar, and the jar has a Java module name;
#  - the build is reproducible: the published modules are built twice, at the same time, each from a fresh copy of
#    the working tree in its own temporary directory (tests skipped), and every jar of the two builds is compared
#    byte for byte.
#
# Usage: scripts/check-reproducible.sh [--install-to DIR]
#   --install-to DIR  the first build also installs the BOM, the parent and the library modules into DIR, a local
#                     repository of its own (see temp_maven_settings in lib.sh): never into ~/.m2, which every
#                     worktree and build on this machine shares. scripts/check-consumer.sh builds against it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_to=
while [ $# -gt 0 ]; do
  case "$1" in
    --install-to) install_to=$2; shift 2 ;;
    *) echo "usage: $0 [--install-to DIR]" >&2; exit 2 ;;
  esac
done

mapfile -t published < <(published_modules)
bom_lists=$(bom_artifacts | sort)
expected=$(printf '%s\n' "${published[@]}" | sort)
if [ "$bom_lists" != "$expected" ]; then
  echo "overlay4j-bom/pom.xml must list exactly the published modules (those without maven.deploy.skip)." >&2
  diff <(echo "$bom_lists") <(echo "$expected") | sed 's/^</  in the BOM only:/; s/^>/  published, not in the BOM:/' \
    | grep '^ ' >&2
  exit 1
fi
echo "published modules (all listed in overlay4j-bom): ${published[*]}"

work=$(mktemp -d /tmp/overlay4j-repro.XXXXXX)
trap 'rm -rf "$work"' EXIT
modules=$(IFS=,; echo "overlay4j-bom,${published[*]}")

# Two fresh copies of the working tree (tracked and untracked files, nothing ignored such as target/).
for copy in a b; do
  mkdir -p "$work/$copy"
  git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$work/$copy"
done

# The two builds run side by side (each mostly keeps one core busy); a failing one shows its log.
mvn_opts=(-B -ntp -q -Dstyle.color=never -DskipTests -pl "$modules" -am)
if [ -n "$install_to" ]; then
  mkdir -p "$install_to"
  temp_maven_settings "$install_to" > "$work/settings.xml"
  (cd "$work/a" && mvn "${mvn_opts[@]}" -s "$work/settings.xml" -Dmaven.repo.local="$install_to" install) \
    > "$work/a.log" 2>&1 &
else
  (cd "$work/a" && mvn "${mvn_opts[@]}" package) > "$work/a.log" 2>&1 &
fi
build_a=$!
(cd "$work/b" && mvn "${mvn_opts[@]}" package) > "$work/b.log" 2>&1 &
build_b=$!
for build in a b; do
  pid=build_$build
  if ! wait "${!pid}"; then
    echo "build $build of the published modules failed:" >&2
    tail -n 50 "$work/$build.log" >&2
    exit 1
  fi
done

failed=0
names=()
for m in "${published[@]}"; do
  for kind in "" -sources -javadoc; do
    if ! ls "$work/a/$m/target/$m"-*"$kind".jar >/dev/null 2>&1; then
      echo "$m: no ${kind#-}${kind:+ }jar was built" >&2
      failed=1
    fi
  done
  jar=$(ls "$work/a/$m/target/$m"-*.jar | grep -Ev -- '-(sources|javadoc|tests)\.jar$' | head -n 1)
  name=$(unzip -p "$jar" META-INF/MANIFEST.MF | tr -d '\r' | sed -n 's/^Automatic-Module-Name: *//p')
  if [ -z "$name" ] && unzip -l "$jar" module-info.class >/dev/null 2>&1; then
    name=$(jar --describe-module --file "$jar" | head -n 1 | sed 's/@.*//')
  fi
  if [ -z "$name" ]; then
    echo "$m: $(basename "$jar") has no Java module name (module-info.class or Automatic-Module-Name)" >&2
    failed=1
  fi
  names+=("$m=$name")
  for f in "$work/a/$m/target/"*.jar; do
    rel=${f#"$work/a/"}
    if ! cmp -s "$f" "$work/b/$rel"; then
      echo "not reproducible: $rel differs between two builds of the same sources" >&2
      # Name the entries that differ, to say where to look.
      diff <(unzip -lv "$f" | awk 'NF >= 8 {print $7, $8}') <(unzip -lv "$work/b/$rel" | awk 'NF >= 8 {print $7, $8}') \
        | head -n 20 >&2 || true
      failed=1
    fi
  done
done
[ "$failed" -eq 0 ] || exit 1
echo "module names: ${names[*]}"
jars=$(cd "$work/a" && ls "${published[@]/%//target}" | grep -c '\.jar$')
echo "reproducible: $jars jars of ${#published[@]} modules are byte-identical across two clean builds"
