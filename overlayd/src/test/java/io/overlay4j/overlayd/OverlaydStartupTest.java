package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Start-up faults handled as flanneld does, or better: a missing, invalid or unusable config (an unknown backend type)
 * is logged and retried with {@code /readyz} 503 until it is fixed; a port or device another daemon holds, or an
 * interface that does not exist, is one error line and status 1 without a stack trace; a bad flag is one line and
 * status 2. Also {@code -ip-blackhole-route} and a config with {@code EnableNFTables}.
 */
class OverlaydStartupTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4js");

    @TempDir
    Path dir;

    private Lan lan;
    private NetworkNamespace host1;

    @BeforeEach
    void setUp() throws Exception {
        lan = new Lan(namespaces, dir);
        lan.startEtcd();
        host1 = lan.addHost(1);
    }

    @AfterEach
    void tearDown() {
        if (lan != null) {
            lan.close();
        }
    }

    private NamespacedProcess overlayd(String name, NetworkNamespace host, int healthz, String... more)
            throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("-etcd-endpoints", Lan.ETCD, "-subnet-file",
                dir.resolve(name + ".env").toString(), "-healthz-ip", "127.0.0.1", "-healthz-port",
                String.valueOf(healthz)));
        args.addAll(List.of(more));
        return lan.overlayd(name, host, args, Map.of());
    }

    /** The process exits 1 with exactly one error line (containing {@code expected}) and no stack trace. */
    private static String assertFailsWithOneLine(NamespacedProcess p, String expected) throws Exception {
        assertEquals(1, p.waitFor(60), p.log());
        String log = p.log();
        List<String> errors = log.lines().filter(l -> l.contains(" ERROR ")).toList();
        assertEquals(1, errors.size(), log);
        assertTrue(errors.get(0).contains(expected), expected + " in\n" + log);
        assertFalse(log.contains("\tat ") || log.contains("Exception in thread"), "a stack trace:\n" + log);
        System.out.println(errors.get(0));
        return errors.get(0);
    }

    @Test
    void configProblemsAreRetriedAndOtherFaultsAreOneLine() throws Exception {
        NamespacedProcess d1 = overlayd("d1", host1, 8471, "-ip-blackhole-route");
        d1.awaitLog("couldn't find the network config at /coreos.com/network/config", 60);
        assertEquals("HTTP/1.1 503 Service Unavailable\nflanneld is not ready yet",
                Lan.http(host1, "127.0.0.1", 8471, "/readyz"));
        assertEquals("HTTP/1.1 200 OK\nflanneld is running", Lan.http(host1, "127.0.0.1", 8471, "/healthz"));

        lan.etcdctl("put", "/coreos.com/network/config", "{\"Network\":\"100.96.0.0/33\"}");
        d1.awaitLog("couldn't use the network config at /coreos.com/network/config", 30);
        lan.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan9\"}}");
        d1.awaitLog("unknown backend type: vxlan9", 30);
        assertTrue(Lan.http(host1, "127.0.0.1", 8471, "/readyz").startsWith("HTTP/1.1 503"));
        assertTrue(d1.isAlive());

        // Fixed, with the traffic rules in nftables (flanneld's EnableNFTables).
        lan.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"EnableNFTables\":true,\"Backend\":{\"Type\":\"udp\"}}");
        Lan.awaitHttp(host1, 8471, "/readyz", "HTTP/1.1 200", 60);
        String nft = NamespacedProcess.run(host1.name(), "nft", "list", "table", "ip", "flannel-ipv4");
        assertTrue(nft.contains("type filter hook forward priority filter; policy accept;")
                && nft.contains("ip saddr 100.96.0.0/16 accept") && nft.contains("ip daddr 100.96.0.0/16 accept"), nft);
        assertFalse(NamespacedProcess.run(host1.name(), "iptables-save").contains("FLANNEL"));
        assertFalse(d1.log().contains("\tat "), d1.log());
        // -ip-blackhole-route: the node's subnet has a blackhole route (no bridge holds it here).
        String subnet = io.overlay4j.SubnetFile.readPreviousSubnet(dir.resolve("d1.env")).orElseThrow().toString();
        assertEquals("blackhole " + subnet, NamespacedProcess.run(host1.name(), "ip", "-4", "route", "show", "type",
                "blackhole").strip());

        // A second daemon on the same host: flannel0 is taken.
        assertFailsWithOneLine(overlayd("d2", host1, 8472), "cannot start the udp backend");
        // A third on the first one's health port.
        assertFailsWithOneLine(overlayd("d3", host1, 8471), "cannot serve /healthz on 127.0.0.1:8471: "
                + "Address already in use");
        // An interface that does not exist.
        assertFailsWithOneLine(overlayd("d4", host1, 0, "-iface=nope0"), "cannot find the interface to use: "
                + "no interface matches -iface nope0");

        // Another host whose UDP port 8285 is taken by someone else.
        NetworkNamespace host2 = lan.addHost(2);
        try (DatagramSocket squatter = host2.call(() -> new DatagramSocket(new InetSocketAddress("0.0.0.0", 8285)))) {
            assertTrue(squatter.isBound());
            // With offloads (the default) the native socket says EADDRINUSE, without them the JDK's BindException.
            String line = assertFailsWithOneLine(overlayd("d5", host2, 8471), "cannot start the udp backend");
            assertTrue(line.matches(".*(EADDRINUSE|Address already in use).*8285.*|.*8285.*(EADDRINUSE|Address "
                    + "already in use).*"), line);
        }
        assertTrue(d1.isAlive());
        assertEquals(0, d1.terminate(30), d1.log());
    }

    @Test
    void badFlagsAreUsageErrors() throws Exception {
        NamespacedProcess p = lan.overlayd("bad", host1, List.of("-etcd-prefix=coreos.com/network"), Map.of());
        assertEquals(2, p.waitFor(60));
        assertEquals(List.of("overlayd: invalid value \"coreos.com/network\" for flag -etcd-prefix: the etcd prefix "
                + "must be an absolute key path such as /coreos.com/network (see overlayd -help)"), p.log().lines()
                .toList());
        p = lan.overlayd("kube", host1, List.of(), Map.of("FLANNELD_KUBE_SUBNET_MGR", "true"));
        assertEquals(2, p.waitFor(60));
        assertEquals(1, p.log().lines().count(), p.log());
    }
}
