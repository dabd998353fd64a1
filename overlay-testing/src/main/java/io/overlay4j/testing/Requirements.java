package io.overlay4j.testing;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What a test needs from the machine. On a laptop a missing capability skips the test; under {@code CI=true} it
 * fails with a message that says what is missing, so CI never passes by skipping.
 */
public final class Requirements {
    private Requirements() {
    }

    /** Whether the tests run under CI ({@code CI=true}). */
    public static boolean ci() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /** Skips (or, under CI, fails) unless {@code ok}. */
    public static void require(boolean ok, String whatIsMissing) {
        if (ok) {
            return;
        }
        if (ci()) {
            fail("CI=true but " + whatIsMissing);
        }
        assumeTrue(false, whatIsMissing);
    }

    /** Root (uid 0), needed for namespaces, TUN devices and netlink changes. */
    public static void requireRoot() {
        require("root".equals(System.getProperty("user.name")), "this test needs root (uid 0)");
    }

    /** Root, {@code /dev/net/tun} and the {@code ip} command for building test topologies. */
    public static void requireKernelNetworking() {
        requireRoot();
        require(Files.exists(Path.of("/dev/net/tun")), "/dev/net/tun is missing (modprobe tun)");
        requireBinary("ip");
    }

    /** An executable on the PATH (or /usr/sbin, /sbin). */
    public static void requireBinary(String name) {
        require(findBinary(name) != null, "the '" + name + "' binary is not installed");
    }

    /** The path of an executable on the PATH (or /usr/sbin, /sbin), or null. */
    public static String findBinary(String name) {
        String path = System.getenv().getOrDefault("PATH", "") + File.pathSeparator + "/usr/sbin:/sbin:/usr/bin";
        for (String dir : path.split(File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, name);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }
}
