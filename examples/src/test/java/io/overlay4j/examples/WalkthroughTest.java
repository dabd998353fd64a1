package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.udp.UdpBackend;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The flannel walk-through for real: two hosts and two containers in namespaces this test creates, an overlay4j node
 * on each host, ping and a checked TCP transfer between the containers through the udp overlay.
 */
class WalkthroughTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";

    @TempDir
    Path dir;

    private String prefix;
    private WalkthroughTopology topology;
    private LocalSubnetAllocator allocator;
    private OverlayNode node1;
    private OverlayNode node2;

    @BeforeEach
    void setUp() throws Exception {
        Walkthroughs.requireHosts();
        prefix = Walkthroughs.uniquePrefix("o4jw");
        topology = WalkthroughTopology.create(prefix, 1472);
        allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(NetworkConfig.parse(CONFIG)).build();
    }

    @AfterEach
    void tearDown() throws Exception {
        Walkthroughs.closeAll(node1, node2, allocator, topology);
        if (topology != null) {
            for (String n : new String[] {"host1", "host2", "c1", "c2"}) {
                assertFalse(Files.exists(Path.of("/run/netns", prefix + n)), "namespace left behind: " + n);
            }
        }
    }

    private OverlayNode start(NetworkNamespace host, String name, io.overlay4j.Ipv4Prefix prefer) throws Exception {
        return start(host, name, prefer, false);
    }

    private OverlayNode start(NetworkNamespace host, String name, io.overlay4j.Ipv4Prefix prefer, boolean offloads)
            throws Exception {
        return host.call(() -> {
            OverlayNode.Builder b = OverlayNode.builder().allocator(allocator)
                    .backend(UdpBackend.builder().offloads(offloads).build())
                    .underlayInterface(WalkthroughTopology.UNDERLAY)
                    .subnetFile(dir.resolve(name + ".env"));
            if (prefer != null) {
                b.preferredSubnet(prefer);
            }
            return b.build().start();
        });
    }

    private static void awaitPeers(OverlayNode node, int n) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (node.peers().size() < n) {
            assertTrue(System.nanoTime() < deadline, "peer not learned within 10 s");
            Thread.sleep(10);
        }
    }

    @Test
    void containersReachEachOtherThroughTheOverlay() throws Exception {
        exchange(false, false);
    }

    @Test
    void containersReachEachOtherWithOffloads() throws Exception {
        exchange(true, true);
        assertTrue(tunDetails(topology.host1()).contains("vnet_hdr on"), tunDetails(topology.host1()));
    }

    @Test
    void aNodeWithOffloadsAndOneWithoutInteroperate() throws Exception {
        exchange(true, false);
    }

    @Test
    void offloadsFallBackToAPlainTunWhenTheKernelRefusesThem() throws Exception {
        System.setProperty(LinuxTunDevice.REFUSE_OFFLOADS_PROPERTY, "true");
        try {
            // Both nodes ask for offloads; their TUN devices come up plain, the sockets keep GSO/GRO.
            exchange(true, true);
        } finally {
            System.clearProperty(LinuxTunDevice.REFUSE_OFFLOADS_PROPERTY);
        }
        String link = tunDetails(topology.host1());
        assertTrue(link.contains("vnet_hdr off"), link);
    }

    /** {@code ip -d link show flannel0} inside a host. */
    private static String tunDetails(NetworkNamespace host) throws Exception {
        Process p = new ProcessBuilder("ip", "netns", "exec", host.name(), "ip", "-d", "link", "show", "flannel0")
                .redirectErrorStream(true).start();
        return new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    }

    private void exchange(boolean offloads1, boolean offloads2) throws Exception {
        node1 = start(topology.host1(), "host1", WalkthroughTopology.SUBNET1, offloads1);
        node2 = start(topology.host2(), "host2", WalkthroughTopology.SUBNET2, offloads2);
        assertEquals(WalkthroughTopology.SUBNET1, node1.lease().subnet());
        assertEquals(WalkthroughTopology.SUBNET2, node2.lease().subnet());
        assertEquals(1472, node1.mtu());
        awaitPeers(node1, 1);
        awaitPeers(node2, 1);

        List<String> hostRoutes = WalkthroughTopology.routes(topology.host1()).stream().map(Route::toString).toList();
        assertTrue(hostRoutes.contains("100.96.0.0/16 dev flannel0"), hostRoutes.toString());
        assertTrue(hostRoutes.contains("100.96.1.0/24 dev docker0 proto kernel scope link src 100.96.1.1"),
                hostRoutes.toString());
        assertEquals("FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=100.96.1.1/24\nFLANNEL_MTU=1472\n"
                + "FLANNEL_IPMASQ=false\n", Files.readString(dir.resolve("host1.env")));

        Ping.Result ping = Ping.run(topology.c1(), WalkthroughTopology.C2_IP, 3);
        assertEquals(3, ping.received(), ping.output());

        long size = 16L << 20;
        TcpStream.Result tcp = TcpStream.run(topology.c1(), topology.c2(), WalkthroughTopology.C2_IP, 5201, size,
                Duration.ofSeconds(60));
        assertEquals(size, tcp.bytesReceived());
        assertTrue(tcp.intact(), "stream corrupted");
        // And back: c2 -> c1 exercises the other direction's segmentation and coalescing.
        TcpStream.Result back = TcpStream.run(topology.c2(), topology.c1(), WalkthroughTopology.C1_IP, 5202, size,
                Duration.ofSeconds(60));
        assertEquals(size, back.bytesReceived());
        assertTrue(back.intact(), "reverse stream corrupted");

        TrafficStats s1 = node1.stats();
        TrafficStats s2 = node2.stats();
        assertTrue(s1.egressBytes() > size, s1.toString());
        assertTrue(s2.ingressBytes() > size, s2.toString());
        assertTrue(s2.egressPackets() > 0 && s1.ingressPackets() > 0, "no ACKs came back: " + s1 + " / " + s2);
        assertEquals(0, s1.drops(DropReason.NO_ROUTE) + s2.drops(DropReason.NO_ROUTE));
        for (DropReason r : new DropReason[] {DropReason.BAD_HEADER, DropReason.TRUNCATED, DropReason.OVERSIZE,
            DropReason.SEND_FAILED, DropReason.TUN_WRITE_FAILED}) {
            assertEquals(0, s1.drops(r) + s2.drops(r), r + ": " + s1 + " / " + s2);
        }
    }

    @Test
    void unknownDestinationGetsNetUnreachable() throws Exception {
        node1 = start(topology.host1(), "host1", WalkthroughTopology.SUBNET1);
        // flannel answers no ICMP offender (so no ping), but a TCP SYN to a subnet nobody holds gets an ICMP
        // net-unreachable from flannel0, which ends the connect at once instead of after a timeout.
        InetSocketAddress nowhere = new InetSocketAddress(Ipv4Prefix.parseAddress("100.96.77.7"), 80);
        long start = System.nanoTime();
        IOException e = assertThrows(IOException.class, () -> topology.c1().call(() -> {
            try (SocketChannel ch = SocketChannel.open()) {
                ch.socket().connect(nowhere, 10_000);
            }
            return null;
        }));
        assertTrue(String.valueOf(e.getMessage()).contains("unreachable"), e.toString());
        assertTrue(System.nanoTime() - start < 5_000_000_000L, "connect was not cut short by the ICMP error");
        // The kernel may deliver the ICMP error before the egress thread has counted it.
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (node1.stats().icmpSent() < 1 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertTrue(node1.stats().icmpSent() >= 1, node1.stats().toString());
        assertTrue(node1.stats().drops(DropReason.NO_ROUTE) >= 1);
    }

    @Test
    void restartedNodeGetsItsPreviousSubnet() throws Exception {
        node1 = start(topology.host1(), "host1", null);
        node2 = start(topology.host2(), "host2", null);
        io.overlay4j.Ipv4Prefix first = node1.lease().subnet();
        node1.close();
        assertFalse(WalkthroughTopology.routes(topology.host1()).stream()
                .anyMatch(r -> r.device().startsWith("flannel")), "route left behind after close");
        node1 = start(topology.host1(), "host1", null);
        assertEquals(first, node1.lease().subnet());
    }
}
