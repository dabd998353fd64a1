package io.overlay4j.overlayd;

import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A small underlay for daemon tests, all in namespaces from {@link TestNamespaces}: {@code ext} (10.168.0.1, a bridge
 * every host's eth0 is plugged into, the default gateway, an address outside the overlay, and where etcd listens on
 * 10.168.0.1:2379) and hosts 10.168.0.2, .3, ... Each host gets a decoy interface (up, 192.0.2.x) created before eth0,
 * so it is listed first, and its default route through eth0. overlayd runs in a host as a separate JVM.
 */
final class Lan implements AutoCloseable {
    static final String EXT_IP = "10.168.0.1";
    static final String ETCD = "http://" + EXT_IP + ":2379";

    private final TestNamespaces namespaces;
    private final Path dir;
    final NetworkNamespace ext;
    private final List<NetworkNamespace> hosts = new ArrayList<>();
    private final List<NamespacedProcess> processes = new ArrayList<>();
    private NamespacedProcess etcd;

    Lan(TestNamespaces namespaces, Path dir) throws IOException {
        Requirements.requireBinary("etcd");
        Requirements.requireBinary("etcdctl");
        Requirements.requireBinary("nsenter");
        Requirements.requireBinary("iptables");
        this.namespaces = namespaces;
        this.dir = dir;
        ext = namespaces.createWithLoopback();
        namespaces.ip(ext, "link", "add", "lan0", "type", "bridge");
        namespaces.ip(ext, "addr", "add", EXT_IP + "/24", "dev", "lan0");
        namespaces.ip(ext, "link", "set", "lan0", "up");
    }

    /** Adds host {@code n} (1-based): eth0 10.168.0.(n+1)/24, default via ext, forwarding on. */
    NetworkNamespace addHost(int n) throws IOException {
        NetworkNamespace h = namespaces.createWithLoopback();
        String ip = "10.168.0." + (n + 1);
        namespaces.ip(h, "link", "add", "decoy0", "type", "veth", "peer", "name", "decoy1");
        namespaces.ip(h, "addr", "add", "192.0.2." + (n + 1) + "/24", "dev", "decoy0");
        namespaces.ip(h, "link", "set", "decoy1", "up");
        namespaces.ip(h, "link", "set", "decoy0", "up");
        String port = "lan" + n;
        namespaces.ip(h, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", ext.name());
        namespaces.ip(h, "addr", "add", ip + "/24", "dev", "eth0");
        namespaces.ip(h, "link", "set", "eth0", "up");
        namespaces.ip(ext, "link", "set", port, "master", "lan0");
        namespaces.ip(ext, "link", "set", port, "up");
        namespaces.ip(h, "route", "add", "default", "via", EXT_IP, "dev", "eth0");
        namespaces.exec(h, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        hosts.add(h);
        return h;
    }

    /** A bare namespace for a container (the CNI plugin configures it). */
    NetworkNamespace addContainer() throws IOException {
        return namespaces.createWithLoopback();
    }

    /** Starts (or restarts) etcd in ext and waits until it answers. */
    void startEtcd() throws Exception {
        etcd = NamespacedProcess.start("etcd", ext.name(), dir.resolve("etcd-" + processes.size() + ".log"),
                List.of("etcd", "--name", "lan", "--data-dir", dir.resolve("etcd-data").toString(),
                        "--listen-client-urls", ETCD, "--advertise-client-urls", ETCD,
                        "--listen-peer-urls", "http://127.0.0.1:2380",
                        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                        "--initial-cluster", "lan=http://127.0.0.1:2380"));
        processes.add(etcd);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            try {
                etcdctl("endpoint", "health");
                return;
            } catch (IOException e) {
                if (System.nanoTime() > deadline || !etcd.isAlive()) {
                    throw new IOException("etcd did not come up:\n" + etcd.log(), e);
                }
                Thread.sleep(100);
            }
        }
    }

    /** Kills etcd (its data stays). */
    void stopEtcd() throws InterruptedException {
        etcd.kill();
    }

    String etcdctl(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("env", "ETCDCTL_API=3", "etcdctl", "--endpoints", ETCD));
        cmd.addAll(List.of(args));
        return NamespacedProcess.run(ext.name(), cmd.toArray(String[]::new));
    }

    /** Starts overlayd in {@code host} with these arguments and variables; its output goes to {@code <name>.log}. */
    NamespacedProcess overlayd(String name, NetworkNamespace host, List<String> args, Map<String, String> env)
            throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), Overlayd.class.getName()));
        cmd.addAll(args);
        NamespacedProcess p = NamespacedProcess.start(name, host.name(),
                dir.resolve(name + "-" + processes.size() + ".log"), cmd, env);
        processes.add(p);
        return p;
    }

    /** A plain HTTP/1.0 GET from inside {@code ns}: the status line and body. */
    static String http(NetworkNamespace ns, String host, int port, String path) throws Exception {
        return ns.call(() -> {
            try (Socket s = new Socket(host, port)) {
                s.setSoTimeout(10_000);
                s.getOutputStream().write(("GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                String response = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                int body = response.indexOf("\r\n\r\n");
                return response.substring(0, response.indexOf("\r\n")) + "\n" + response.substring(body + 4);
            }
        });
    }

    /** {@code http} retried until its answer starts with {@code status} (e.g. {@code HTTP/1.1 503}). */
    static String awaitHttp(NetworkNamespace ns, int port, String path, String status, long seconds)
            throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        String last = "";
        while (System.nanoTime() < deadline) {
            try {
                last = http(ns, "127.0.0.1", port, path);
                if (last.startsWith(status)) {
                    return last;
                }
            } catch (Exception e) {
                last = e.toString();
            }
            Thread.sleep(200);
        }
        throw new AssertionError(path + " did not answer " + status + " within " + seconds + " s; last: " + last);
    }

    @Override
    public void close() {
        for (int i = processes.size() - 1; i >= 0; i--) {
            processes.get(i).close();
        }
    }
}
