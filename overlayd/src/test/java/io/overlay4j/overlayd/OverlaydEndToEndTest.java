package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.SubnetFile;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * overlayd as a host runs it in place of flanneld, once per backend the network config may name (udp, vxlan,
 * host-gw): two hosts whose FORWARD policy is DROP (as Docker sets it), etcd on
 * the underlay, host1 started with a flanneld unit file's flags ({@code -etcd-endpoints=… -iface=eth0 -ip-masq -v=2
 * -iptables-forward-rules=true}), host2 only with {@code FLANNELD_*} variables and no interface named (a decoy is
 * listed before eth0; the default route decides). Containers are attached by the reference CNI bridge plugin with
 * the conflist overlayd generates from subnet.env. Checked: systemd's READY=1, flanneld's health bodies, container to
 * container across hosts, container to an address outside the overlay masqueraded to the host's IP, flanneld's chains
 * and comments in iptables-save, rules deleted by hand restored by the resync, /readyz 503 while etcd is down and 200
 * after, {@code /metrics} with the node's meters (traffic, per peer for udp, state, store reachability while etcd is
 * up and down), peers logged, exit 1 when another host claims the subnet, STOPPING=1 and exit 0 on SIGTERM.
 */
class OverlaydEndToEndTest {
    private static final int HEALTHZ = 8471;
    private static final Pattern TIMESTAMPED = Pattern.compile("(?m)^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}"
            + "(Z|[+-]\\d\\d:\\d\\d) INFO overlayd - acquired lease: subnet 100\\.96\\.\\d+\\.0/24 "
            + "for 10\\.168\\.0\\.2$");

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4jd");

    @TempDir
    Path dir;

    private Lan lan;

    @BeforeEach
    void setUp() throws Exception {
        Cni.require();
        lan = new Lan(namespaces, dir);
        lan.startEtcd();
    }

    @AfterEach
    void tearDown() {
        if (lan != null) {
            lan.close();
        }
    }

    private static String conflist(Path subnetEnv, Path ipamDir) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int status = Overlayd.run(List.of("cni-conflist", "-subnet-file", subnetEnv.toString(), "-data-dir",
                ipamDir.toString()), Map.of(), new PrintStream(out, true, StandardCharsets.UTF_8), System.err);
        assertEquals(0, status);
        return out.toString(StandardCharsets.UTF_8);
    }

    private String iptablesSave(NetworkNamespace host) throws Exception {
        return NamespacedProcess.run(host.name(), "iptables-save");
    }

    private static void awaitPing(NetworkNamespace from, String to, String when) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        String out = "";
        while (System.nanoTime() < deadline) {
            try {
                out = NamespacedProcess.run(from.name(), "ping", "-n", "-c", "1", "-W", "1", to);
                return;
            } catch (java.io.IOException e) {
                out = e.getMessage();
            }
        }
        throw new AssertionError("no ping reply from " + to + " " + when + ": " + out);
    }

    /**
     * @param variant the config's backend type, or {@code vxlan-userspace}: a vxlan network where host1 runs
     *                {@code -vxlan-dataplane=userspace} and host2 the default (the kernel's), a mixed pair
     */
    @ParameterizedTest(name = "backend {0}")
    @ValueSource(strings = {"udp", "vxlan", "host-gw", "vxlan-userspace"})
    void aFlanneldHostRunsOverlaydUnchanged(String variant) throws Exception {
        boolean userspace = variant.equals("vxlan-userspace");
        String backend = userspace ? "vxlan" : variant;
        lan.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"" + backend + "\"}}");
        NetworkNamespace host1 = lan.addHost(1);
        NetworkNamespace host2 = lan.addHost(2);
        for (NetworkNamespace h : List.of(host1, host2)) {
            NamespacedProcess.run(h.name(), "iptables", "-P", "FORWARD", "DROP");
        }
        Path env1 = dir.resolve("host1-subnet.env");
        Path env2 = dir.resolve("host2-subnet.env");
        String notify = dir.resolve("notify.sock").toString();
        try (NotifySocket systemd = NotifySocket.bind(notify)) {
            List<String> flags1 = new java.util.ArrayList<>(List.of("-etcd-endpoints=" + Lan.ETCD,
                    "-iface=eth0", "-ip-masq", "-v=2", "-iptables-forward-rules=true", "-subnet-file=" + env1,
                    "-healthz-ip=127.0.0.1", "-healthz-port=" + HEALTHZ, "-iptables-resync=1"));
            if (userspace) {
                flags1.add("-vxlan-dataplane=userspace");
            }
            NamespacedProcess d1 = lan.overlayd("overlayd-host1", host1, flags1, Map.of("NOTIFY_SOCKET", notify));
            NamespacedProcess d2 = lan.overlayd("overlayd-host2", host2, List.of(), Map.of(
                    "FLANNELD_ETCD_ENDPOINTS", Lan.ETCD, "FLANNELD_IP_MASQ", "true", "FLANNELD_SUBNET_FILE",
                    env2.toString(), "FLANNELD_HEALTHZ_PORT", String.valueOf(HEALTHZ),
                    "FLANNELD_HEALTHZ_IP", "127.0.0.1"));

            // systemd hears READY=1 once the lease is held, the rules are in and subnet.env is written.
            String ready = systemd.receive(90_000);
            assertEquals("READY=1", ready, "no READY=1 from host1:\n" + d1.log());
            SubnetFile.Contents s1 = SubnetFile.read(env1).orElseThrow();
            assertTrue(s1.ipMasq(), "FLANNEL_IPMASQ=true");
            String healthz = Lan.http(host1, "127.0.0.1", HEALTHZ, "/healthz");
            assertEquals("HTTP/1.1 200 OK\nflanneld is running", healthz);
            assertEquals("HTTP/1.1 200 OK\nflanneld is ready", Lan.http(host1, "127.0.0.1", HEALTHZ, "/readyz"));
            Lan.awaitHttp(host2, HEALTHZ, "/readyz", "HTTP/1.1 200", 90);
            SubnetFile.Contents s2 = SubnetFile.read(env2).orElseThrow();

            // host2 named no interface: the default route's eth0 (10.168.0.3), not the decoy listed before it.
            String keys = lan.etcdctl("get", "--prefix", "/coreos.com/network/subnets");
            assertTrue(keys.contains("/coreos.com/network/subnets/" + s2.subnet().toString().replace('/', '-')
                    + "\n{\"PublicIP\":\"10.168.0.3\","), keys);
            assertTrue(keys.contains("{\"PublicIP\":\"10.168.0.2\","), keys);

            // Containers attached by the reference bridge plugin with overlayd's conflist.
            NetworkNamespace c1 = lan.addContainer();
            NetworkNamespace c2 = lan.addContainer();
            String ip1 = Cni.add(host1, c1, conflist(env1, dir.resolve("ipam1")));
            String ip2 = Cni.add(host2, c2, conflist(env2, dir.resolve("ipam2")));
            assertTrue(s1.subnet().contains(Ipv4Prefix.parseAddress(ip1)), ip1 + " in " + s1.subnet());
            assertTrue(s2.subnet().contains(Ipv4Prefix.parseAddress(ip2)), ip2 + " in " + s2.subnet());
            String mtu = NamespacedProcess.run(c1.name(), "ip", "-o", "link", "show", "eth0");
            assertTrue(mtu.contains("mtu " + s1.mtu() + " "), mtu);

            awaitPing(c1, ip2, "container to container across the hosts");
            awaitPing(c2, ip1, "back");

            // /metrics on the health port: the node's meters in Prometheus text, counting what the pings made.
            String metrics = Lan.http(host1, "127.0.0.1", HEALTHZ, "/metrics");
            assertTrue(metrics.startsWith("HTTP/1.1 200 OK\n"), metrics);
            assertEquals(1.0, metric(metrics, "overlay4j_node_state{state=\"ready\"}"), metrics);
            assertEquals(1.0, metric(metrics, "overlay4j_store_reachable"), metrics);
            assertEquals(1.0, metric(metrics, "overlay4j_peers"), metrics);
            double remaining = metric(metrics, "overlay4j_lease_remaining_seconds");
            assertTrue(remaining > 3600 && remaining <= 86400, "lease remaining " + remaining);
            assertEquals(0.0, metric(metrics, "overlay4j_drops_total{reason=\"spoofed_source\"}"), metrics);
            assertTrue(metrics.contains("jvm_memory_used_bytes{"), "the JVM's meters too:\n" + metrics);
            if (!backend.equals("host-gw")) { // host-gw has no device of its own to count on
                assertTrue(metric(metrics, "overlay4j_packets_total{direction=\"egress\"}") >= 1, metrics);
                assertTrue(metric(metrics, "overlay4j_packets_total{direction=\"ingress\"}") >= 1, metrics);
            }
            if (backend.equals("udp") || userspace) { // per peer and offloads: the userspace data planes
                String peer = "peer=\"" + s2.subnet() + "\"";
                assertTrue(metric(metrics, "overlay4j_peer_packets_total{direction=\"egress\"," + peer + "}") >= 1,
                        metrics);
                assertTrue(metric(metrics, "overlay4j_peer_packets_total{direction=\"ingress\"," + peer + "}") >= 1,
                        metrics);
                double seen = metric(metrics, "overlay4j_peer_last_seen_seconds{" + peer + "}");
                assertTrue(Math.abs(seen - System.currentTimeMillis() / 1000.0) < 120, "last seen " + seen);
                String tun = backend.equals("udp") ? "flannel0" : "flannel.1";
                assertEquals(1.0, metric(metrics, "overlay4j_offload{device=\"" + tun + "\","
                        + "feature=\"tun_vnet_header\",status=\"on\"}"), metrics);
            } else {
                assertTrue(!metrics.contains("overlay4j_peer_packets_total"), metrics);
            }

            // To an address outside the overlay: masqueraded to host1's address by FLANNEL-POSTRTG (ext has no route
            // back to 100.96.0.0/16, so without it there is no answer at all).
            assertEquals("10.168.0.2", connectFrom(c1));

            // flanneld's chains and comments.
            String save = iptablesSave(host1);
            Ipv4Prefix sub1 = s1.subnet();
            for (String line : List.of(
                    "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG",
                    "-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN",
                    "-A FLANNEL-POSTRTG -s " + sub1 + " -d 100.96.0.0/16 -m comment --comment \"flanneld masq\" "
                            + "-j RETURN",
                    "-A FLANNEL-POSTRTG -s 100.96.0.0/16 -d " + sub1 + " -m comment --comment \"flanneld masq\" "
                            + "-j RETURN",
                    "-A FLANNEL-POSTRTG ! -s 100.96.0.0/16 -d " + sub1 + " -m comment --comment \"flanneld masq\" "
                            + "-j RETURN",
                    "-A FLANNEL-POSTRTG -s 100.96.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" "
                            + "-j MASQUERADE --random-fully",
                    "-A FLANNEL-POSTRTG ! -s 100.96.0.0/16 -d 100.96.0.0/16 -m comment --comment \"flanneld masq\" "
                            + "-j MASQUERADE --random-fully",
                    "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD",
                    "-A FLANNEL-FWD -s 100.96.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT",
                    "-A FLANNEL-FWD -d 100.96.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT")) {
                assertTrue(save.contains(line + "\n"), line + "\nmissing from\n" + save);
            }
            System.out.println("iptables-save in host1:\n" + save);

            // Rules deleted by hand come back within the resync period (1 s here).
            NamespacedProcess.run(host1.name(), "iptables", "-F", "FLANNEL-FWD");
            NamespacedProcess.run(host1.name(), "iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment",
                    "--comment", "flanneld masq", "-j", "FLANNEL-POSTRTG");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!sameRules(iptablesSave(host1), save)) {
                assertTrue(System.nanoTime() < deadline, "rules not restored:\n" + iptablesSave(host1));
                Thread.sleep(200);
            }
            awaitPing(c1, ip2, "after the rules were restored");

            // etcd goes away: /readyz says so, the data plane goes on; etcd back: ready again.
            lan.stopEtcd();
            assertEquals("HTTP/1.1 503 Service Unavailable\nflanneld is not ready yet",
                    Lan.awaitHttp(host1, HEALTHZ, "/readyz", "HTTP/1.1 503", 60));
            String degraded = Lan.http(host1, "127.0.0.1", HEALTHZ, "/metrics");
            assertEquals(0.0, metric(degraded, "overlay4j_store_reachable"), degraded);
            assertEquals(1.0, metric(degraded, "overlay4j_node_state{state=\"degraded\"}"), degraded);
            awaitPing(c1, ip2, "while etcd is down");
            lan.startEtcd();
            Lan.awaitHttp(host1, HEALTHZ, "/readyz", "HTTP/1.1 200", 60);

            // Another host claims host2's subnet: host2 must not re-address under its containers, so it exits 1
            // (its supervisor restarts it on a new subnet); host1 sees the claim, then the key's removal.
            String key2 = "/coreos.com/network/subnets/" + s2.subnet().toString().replace('/', '-');
            lan.etcdctl("put", key2, "{\"PublicIP\":\"10.168.0.99\",\"PublicIPv6\":null}");
            assertEquals(1, d2.waitFor(60), d2.log());
            assertTrue(d2.log().contains("ERROR overlayd - another node holds our subnet now (subnet " + s2.subnet()
                    + " is now held by 10.168.0.99)"), d2.log());
            assertTrue(!d2.log().contains("\tat "), d2.log());
            // The node reports the claim as the peer's new attributes (a kernel backend ignores a lease of another
            // type, as flanneld), then the key's removal.
            d1.awaitLog("peer added: subnet " + s2.subnet() + " at 10.168.0.99", 30);
            lan.etcdctl("del", key2);
            d1.awaitLog("peer removed: subnet " + s2.subnet() + " at 10.168.0.99", 30);

            String log1 = d1.log();
            System.out.println("overlayd log of host1:\n" + log1);
            assertTrue(TIMESTAMPED.matcher(log1).find(), "timestamped, levelled lines:\n" + log1);
            for (String line : List.of("found network config: network 100.96.0.0/16", "backend " + backend + " started on eth0",
                    "peer added: subnet " + s2.subnet() + " at 10.168.0.3 (" + backend + ")", "some iptables rules are missing",
                    "etcd is unreachable", "overlayd is not ready: etcd is unreachable", "etcd is reachable again",
                    "overlayd is ready")) {
                assertTrue(log1.contains(line), line + " missing from\n" + log1);
            }
            assertTrue(!log1.contains("\tat "), "no stack traces:\n" + log1);
            if (backend.equals("vxlan")) {
                String plane = userspace ? "userspace" : "kernel";
                assertTrue(log1.contains("started on eth0: subnet " + s1.subnet() + ", mtu 1450, " + plane
                        + " data plane"), log1);
                assertTrue(d2.log().contains(", mtu 1450, kernel data plane"), "host2's auto: " + d2.log());
            }

            // SIGTERM: STOPPING=1, exit 0 (as flanneld, the rules stay).
            assertEquals(0, d1.terminate(30), d1.log());
            assertEquals("STOPPING=1", systemd.receive(10_000));
            assertTrue(iptablesSave(host1).contains("-j FLANNEL-POSTRTG"));
        }
    }

    /** The value of one series ({@code name{labels}}, labels as Prometheus orders them) in a /metrics answer. */
    private static double metric(String text, String series) {
        for (String line : text.split("\n")) {
            if (line.startsWith(series + " ")) {
                return Double.parseDouble(line.substring(series.length() + 1).trim());
            }
        }
        throw new AssertionError("no " + series + " in\n" + text);
    }

    /** Compares the rule lines (not the counters or the header comments) of two iptables-save outputs. */
    private static boolean sameRules(String a, String b) {
        return rules(a).equals(rules(b));
    }

    private static List<String> rules(String save) {
        return save.lines().filter(l -> l.startsWith("-A ") || l.startsWith(":FLANNEL")).toList();
    }

    /** Connects from {@code container} to a server in ext; returns the source address ext saw. */
    private String connectFrom(NetworkNamespace container) throws Exception {
        try (ServerSocket server = lan.ext.call(() -> new ServerSocket(0, 5, InetAddress.getByName(Lan.EXT_IP)))) {
            server.setSoTimeout(20_000);
            CompletableFuture<String> seen = CompletableFuture.supplyAsync(() -> {
                try (Socket s = server.accept()) {
                    return s.getInetAddress().getHostAddress();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            container.run(() -> {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress(Lan.EXT_IP, server.getLocalPort()), 10_000);
                }
            });
            return seen.get(20, TimeUnit.SECONDS);
        }
    }
}
