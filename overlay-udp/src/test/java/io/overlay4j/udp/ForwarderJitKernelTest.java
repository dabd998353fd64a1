package io.overlay4j.udp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The forwarder's warm-up takes every branch of the quiet node's turn before the first real packet, so that the code
 * the JIT compiled from it is not thrown out when live packets take a branch it has never seen (an uncommon trap:
 * the thread then runs the turn in the interpreter and at the first tier for thousands of turns, and the packet that
 * hit the trap waited milliseconds: pings of 1.9–4.3 ms right after start, before). A child JVM
 * ({@link QuietNodeProbe}) runs a quiet node with {@code -XX:+LogCompilation}; no trap in {@link Forwarder}'s code may
 * come between the return of {@code start()} and its last live packet. (Traps inside the warm-up are allowed: the
 * JIT recompiles before {@code start()} returns.)
 */
class ForwarderJitKernelTest {
    private static final Pattern STARTED = Pattern.compile("STARTED (\\d+)");
    private static final Pattern DONE = Pattern.compile("DONE (\\d+)");
    private static final Pattern TRAP = Pattern.compile(
            "<uncommon_trap thread='\\d+' (.*?)>(.*?)</uncommon_trap>", Pattern.DOTALL);
    private static final Pattern STAMP = Pattern.compile("stamp='([0-9.]+)'");

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @TempDir
    Path dir;

    @Test
    void aQuietNodesFirstPacketsRunTheCodeTheWarmUpCompiled() throws Exception {
        Requirements.requireKernelNetworking();
        NetworkNamespace ns = namespaces.createWithLoopback();
        Path log = dir.resolve("compilation.log");
        Path out = dir.resolve("probe.out");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder("ip", "netns", "exec", ns.name(), java, "-XX:+UnlockDiagnosticVMOptions",
                "-XX:+LogCompilation", "-XX:LogFile=" + log, "-cp", System.getProperty("java.class.path"),
                QuietNodeProbe.class.getName()).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("the probe did not finish in 60 s: " + Files.readString(out));
        }
        String output = Files.readString(out);
        assertEquals(0, p.exitValue(), output);
        double started = seconds(STARTED, output);
        double done = seconds(DONE, output);

        List<String> traps = new ArrayList<>();
        Matcher trap = TRAP.matcher(Files.readString(log));
        while (trap.find()) {
            Matcher stamp = STAMP.matcher(trap.group(1));
            double at = stamp.find() ? Double.parseDouble(stamp.group(1)) : -1;
            if (at >= started && at < done && trap.group(2).contains("method='" + Forwarder.class.getName() + " ")) {
                traps.add(trap.group(1) + trap.group(2).replaceAll("\\s+", " "));
            }
        }
        assertTrue(traps.isEmpty(), "uncommon traps in the forwarder's compiled code between start() and the last "
                + "live packet (" + started + " to " + done + " s): " + traps);
    }

    private static double seconds(Pattern marker, String output) {
        Matcher m = marker.matcher(output);
        assertTrue(m.find(), output);
        return Long.parseLong(m.group(1)) / 1000.0;
    }
}
