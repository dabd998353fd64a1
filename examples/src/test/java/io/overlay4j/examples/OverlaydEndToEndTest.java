package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.testing.Requirements;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon as users deploy it: a real etcd on host1, an {@code overlayd} process in each host namespace, the
 * walk-through's containers behind bridges; ping and a checked TCP transfer between the containers, then one
 * overlayd is killed and restarted and gets its previous subnet back. The keys etcd holds afterwards are printed.
 */
class OverlaydEndToEndTest {
    private static final String PREFIX = "/coreos.com/network";
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";
    private static final int HEALTHZ_PORT = 8471;
    private static final Pattern SUBNET = Pattern.compile("FLANNEL_SUBNET=([0-9.]+)/24");

    @TempDir
    Path dir;

    private String prefix;
    private WalkthroughTopology topology;
    private final List<NamespacedProcess> processes = new ArrayList<>();
    private String endpoint;

    @BeforeEach
    void setUp() throws Exception {
        Requirements.requireKernelNetworking();
        Requirements.requireBinary("etcd");
        Requirements.requireBinary("etcdctl");
        Requirements.requireBinary("nsenter");
        prefix = "o4jd" + Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000)) + "-";
        topology = WalkthroughTopology.create(prefix, 1472);
        int clientPort = freePort();
        int peerPort = freePort();
        endpoint = "http://10.168.0.2:" + clientPort;
        NamespacedProcess etcd = NamespacedProcess.start("etcd", prefix + "host1", dir.resolve("etcd.log"), List.of(
                "etcd", "--name", "e2e", "--data-dir", dir.resolve("etcd-data").toString(),
                "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                "--listen-peer-urls", "http://127.0.0.1:" + peerPort,
                "--initial-advertise-peer-urls", "http://127.0.0.1:" + peerPort,
                "--initial-cluster", "e2e=http://127.0.0.1:" + peerPort));
        processes.add(etcd);
        long deadline = System.nanoTime() + 15_000_000_000L;
        while (true) {
            try {
                etcdctl("endpoint", "health");
                break;
            } catch (IOException e) {
                if (System.nanoTime() > deadline || !etcd.isAlive()) {
                    throw new IOException("etcd did not come up:\n" + etcd.log(), e);
                }
                Thread.sleep(100);
            }
        }
        etcdctl("put", PREFIX + "/config", CONFIG);
    }

    @AfterEach
    void tearDown() throws Exception {
        for (int i = processes.size() - 1; i >= 0; i--) {
            processes.get(i).close();
        }
        if (topology != null) {
            topology.close();
            for (String n : new String[] {"host1", "host2", "c1", "c2"}) {
                assertFalse(Files.exists(Path.of("/run/netns", prefix + n)), "namespace left behind: " + n);
            }
        }
    }

    private String etcdctl(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("env", "ETCDCTL_API=3", "etcdctl", "--endpoints", endpoint));
        cmd.addAll(List.of(args));
        return NamespacedProcess.run(prefix + "host1", cmd.toArray(String[]::new));
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private NamespacedProcess overlayd(String host, String ip) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "io.overlay4j.examples.Overlayd",
                "--etcd-endpoints", endpoint, "--iface", WalkthroughTopology.UNDERLAY, "--public-ip", ip,
                "--subnet-file", dir.resolve(host + "-subnet.env").toString(),
                "--healthz-ip", "127.0.0.1", "--healthz-port", String.valueOf(HEALTHZ_PORT)));
        NamespacedProcess p = NamespacedProcess.start("overlayd-" + host, prefix + host,
                dir.resolve("overlayd-" + host + "-" + processes.size() + ".log"), cmd);
        processes.add(p);
        return p;
    }

    private String subnetOf(String host) throws IOException {
        Matcher m = SUBNET.matcher(Files.readString(dir.resolve(host + "-subnet.env")));
        assertTrue(m.find());
        return m.group(1);
    }

    @Test
    void twoDaemonsCarryTrafficAndARestartKeepsTheSubnet() throws Exception {
        // As if both hosts ran before: flanneld (and overlayd) ask for FLANNEL_SUBNET of the old subnet.env first,
        // which puts them on the subnets the walk-through's bridges and containers are addressed for.
        Files.writeString(dir.resolve("host1-subnet.env"), "FLANNEL_NETWORK=100.96.0.0/16\n"
                + "FLANNEL_SUBNET=100.96.1.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n");
        Files.writeString(dir.resolve("host2-subnet.env"), "FLANNEL_NETWORK=100.96.0.0/16\n"
                + "FLANNEL_SUBNET=100.96.2.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n");
        NamespacedProcess d1 = overlayd("host1", "10.168.0.2");
        d1.awaitLog("joined", 60);
        NamespacedProcess d2 = overlayd("host2", "10.168.0.3");
        d2.awaitLog("joined", 60);
        assertEquals("100.96.1.1", subnetOf("host1"));
        assertEquals("100.96.2.1", subnetOf("host2"));
        String healthz = http("host2", "/healthz");
        assertTrue(healthz.startsWith("HTTP/1.1 200") && healthz.contains("overlayd is running"), healthz);
        String readyz = http("host2", "/readyz");
        assertTrue(readyz.startsWith("HTTP/1.1 200") && readyz.contains("overlayd is ready"), readyz);

        awaitPing("after both daemons started");
        long size = 16L << 20;
        TcpStream.Result tcp = TcpStream.run(topology.c1(), topology.c2(), WalkthroughTopology.C2_IP, 5201, size,
                Duration.ofSeconds(60));
        assertEquals(size, tcp.bytesReceived());
        assertTrue(tcp.intact(), "stream corrupted");

        String keys = etcdctl("get", "--prefix", PREFIX);
        System.out.println("etcdctl get --prefix " + PREFIX + ":\n" + keys);
        assertTrue(keys.contains(PREFIX + "/subnets/100.96.1.0-24\n{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null}\n"),
                keys);
        assertTrue(keys.contains(PREFIX + "/subnets/100.96.2.0-24\n{\"PublicIP\":\"10.168.0.3\",\"PublicIPv6\":null}\n"),
                keys);
        assertTrue(keys.contains(PREFIX + "/config\n" + CONFIG + "\n"), keys);
        Matcher lease = Pattern.compile("\"lease\":(\\d+)").matcher(
                etcdctl("get", PREFIX + "/subnets/100.96.1.0-24", "-w", "json"));
        assertTrue(lease.find(), "the subnet key has no etcd lease");
        String ttl = etcdctl("lease", "timetolive", Long.toHexString(Long.parseLong(lease.group(1))));
        System.out.println(ttl);
        assertTrue(ttl.contains("granted with TTL(86400s)"), ttl);

        // A crash: SIGKILL. The TUN device dies with the process; the lease stays in etcd until its TTL runs out.
        d1.kill();
        awaitNoFlannelDevice(prefix + "host1");
        NamespacedProcess again = overlayd("host1", "10.168.0.2");
        again.awaitLog("joined", 60);
        assertEquals("100.96.1.1", subnetOf("host1"), "the restarted daemon must get its previous subnet back");
        awaitPing("after host1's daemon restarted");

        assertEquals(0, again.terminate(30), "overlayd must exit 0 on SIGTERM:\n" + again.log());
        assertEquals(0, d2.terminate(30), "overlayd must exit 0 on SIGTERM:\n" + d2.log());
        awaitNoFlannelDevice(prefix + "host1");
        awaitNoFlannelDevice(prefix + "host2");
    }

    /** A plain HTTP GET to the daemon's health server on the host's loopback. */
    private String http(String host, String path) throws Exception {
        return NamespacedProcess.run(prefix + host, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + HEALTHZ_PORT
                + " && printf 'GET " + path + " HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3");
    }

    private void awaitPing(String when) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        Ping.Result ping;
        do {
            ping = Ping.run(topology.c1(), WalkthroughTopology.C2_IP, 1);
        } while (ping.received() == 0 && System.nanoTime() < deadline);
        assertEquals(1, ping.received(), "no ping reply " + when + ": " + ping.output());
    }

    private static void awaitNoFlannelDevice(String ns) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (NamespacedProcess.run(ns, "ip", "-o", "link").contains("flannel")) {
            assertTrue(System.nanoTime() < deadline, "flannel device still present in " + ns);
            Thread.sleep(50);
        }
    }
}
