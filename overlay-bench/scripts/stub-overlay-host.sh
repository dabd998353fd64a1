#!/usr/bin/env bash
# overlay-bench/scripts/stub-overlay-host.sh -- build a stand-in for io.overlay4j.examples.OverlayHostMain
# so that e2e.sh's overlay4j plumbing (start in the host namespaces, READY, CPU sampling, SIGTERM,
# exit status, device check) can be tested before the real main class exists.
#
#   jar=$(overlay-bench/scripts/stub-overlay-host.sh [OUT_DIR])
#   sudo overlay-bench/e2e.sh --quick --modes overlay4j,host-gw --jar "$jar"
#
# The stub accepts the real command line, writes the subnet file, and instead of a TUN data plane
# installs the host-gw route to the other walk-through host (100.96.M.0/24 via 10.168.0.M+1), prints
# READY, and on SIGTERM removes the route and exits 0. Its numbers are host-gw's, not overlay4j's.
# Needs a JDK (javac, jar).
set -euo pipefail
out=${1:-$(mktemp -d /tmp/o4j-stub.XXXXXX)}
mkdir -p "$out/src/io/overlay4j/examples" "$out/classes"
cat >"$out/src/io/overlay4j/examples/OverlayHostMain.java" <<'JAVA'
package io.overlay4j.examples;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Test stub with OverlayHostMain's command line; routes like host-gw. Not overlay4j. */
public final class OverlayHostMain {
    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        String publicIp = opt.get("--public-ip");
        String iface = opt.get("--iface");
        String subnet = opt.get("--prefer-subnet");
        boolean first = publicIp.equals("10.168.0.2");
        String peerIp = first ? "10.168.0.3" : "10.168.0.2";
        String peerSubnet = first ? "100.96.2.0/24" : "100.96.1.0/24";
        Path subnetFile = Path.of(opt.get("--subnet-file"));
        Files.writeString(subnetFile, "FLANNEL_NETWORK=" + opt.get("--network") + "\nFLANNEL_SUBNET="
                + subnet.replace(".0/24", ".1/24") + "\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n");
        ip("route", "replace", peerSubnet, "via", peerIp, "dev", iface);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                ip("route", "del", peerSubnet);
                Files.deleteIfExists(subnetFile);
            } catch (Exception e) {
                e.printStackTrace();
            }
            Runtime.getRuntime().halt(0);
        }));
        System.out.println("READY");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }

    private static void ip(String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("ip"));
        cmd.addAll(List.of(args));
        int rc = new ProcessBuilder(cmd).inheritIO().start().waitFor();
        if (rc != 0) {
            throw new IllegalStateException(cmd + " failed: " + rc);
        }
    }
}
JAVA
javac -d "$out/classes" "$out/src/io/overlay4j/examples/OverlayHostMain.java" >&2
jar --create --file "$out/overlay4j-stub.jar" -C "$out/classes" . >&2
echo "$out/overlay4j-stub.jar"
