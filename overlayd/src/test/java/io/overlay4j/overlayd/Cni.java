package io.overlay4j.overlayd;

import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs the reference CNI plugins (Debian's containernetworking-plugins in {@code /usr/lib/cni}) the way a runtime
 * does for a one-plugin conflist: the plugin's object with the list's {@code name} and {@code cniVersion} on stdin,
 * {@code CNI_*} in the environment, in the host's namespace.
 */
final class Cni {
    static final Path PLUGINS = Path.of("/usr/lib/cni");
    private static final Pattern ADDRESS = Pattern.compile("\"address\":\\s*\"([0-9.]+)/\\d+\"");
    private static final Pattern PLUGIN = Pattern.compile("\"plugins\":\\s*\\[\\s*(\\{.*})\\s*]\\s*}\\s*$",
            Pattern.DOTALL);
    private static final Pattern HEAD = Pattern.compile(
            "\"cniVersion\":\\s*(\"[^\"]*\"),\\s*\"name\":\\s*(\"[^\"]*\")");

    private Cni() {
    }

    static void require() {
        Requirements.require(Files.isExecutable(PLUGINS.resolve("bridge")) && Files.isExecutable(
                PLUGINS.resolve("host-local")), "the reference CNI plugins are not installed in /usr/lib/cni "
                + "(Debian: containernetworking-plugins)");
    }

    /** The netconf the runtime hands the list's only plugin. */
    static String pluginConfig(String conflist) {
        Matcher head = HEAD.matcher(conflist);
        Matcher plugin = PLUGIN.matcher(conflist);
        if (!head.find() || !plugin.find()) {
            throw new IllegalArgumentException("not a one-plugin conflist: " + conflist);
        }
        return "{\"cniVersion\":" + head.group(1) + ",\"name\":" + head.group(2) + ","
                + plugin.group(1).strip().substring(1);
    }

    /** {@code ADD}: attaches {@code container} as {@code eth0}; returns its IPv4 address. */
    static String add(NetworkNamespace host, NetworkNamespace container, String conflist) throws Exception {
        String out = run(host, container, "ADD", pluginConfig(conflist));
        Matcher m = ADDRESS.matcher(out);
        if (!m.find()) {
            throw new IOException("no address in the bridge plugin's result: " + out);
        }
        return m.group(1);
    }

    private static String run(NetworkNamespace host, NetworkNamespace container, String command, String config)
            throws Exception {
        ProcessBuilder pb = new ProcessBuilder(List.of("nsenter", "--net=/run/netns/" + host.name(), "--",
                PLUGINS.resolve("bridge").toString()));
        pb.environment().put("CNI_COMMAND", command);
        pb.environment().put("CNI_CONTAINERID", container.name());
        pb.environment().put("CNI_NETNS", "/run/netns/" + container.name());
        pb.environment().put("CNI_IFNAME", "eth0");
        pb.environment().put("CNI_PATH", PLUGINS.toString());
        Process p = pb.start();
        p.getOutputStream().write(config.getBytes(StandardCharsets.UTF_8));
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("bridge " + command + " failed: " + out + err + "\nconfig: " + config);
        }
        return out;
    }
}
