package io.overlay4j.examples;

import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs the system's {@code ping} inside a network namespace, as a person would. */
public final class Ping {
    private static final Pattern RTT = Pattern.compile("= ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms");
    private static final Pattern RECEIVED = Pattern.compile("(\\d+) received");

    private Ping() {
    }

    /**
     * The outcome of a ping run.
     *
     * @param output   what ping printed
     * @param received replies received
     * @param avgMs    the average round trip in ms, or NaN when nothing came back
     */
    public record Result(String output, int received, double avgMs) {
    }

    /** Sends {@code count} echo requests from {@code ns} to {@code target}. */
    public static Result run(NetworkNamespace ns, Inet4Address target, int count) throws IOException,
            InterruptedException {
        Process p = new ProcessBuilder("ip", "netns", "exec", ns.name(), "ping", "-n", "-c", String.valueOf(count),
                "-i", "0.2", "-W", "2", target.getHostAddress()).redirectErrorStream(true).start();
        if (!p.waitFor(count + 10L, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("ping did not finish");
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Matcher r = RECEIVED.matcher(out);
        int received = r.find() ? Integer.parseInt(r.group(1)) : 0;
        Matcher m = RTT.matcher(out);
        double avg = m.find() ? Double.parseDouble(m.group(2)) : Double.NaN;
        return new Result(out, received, avg);
    }
}
