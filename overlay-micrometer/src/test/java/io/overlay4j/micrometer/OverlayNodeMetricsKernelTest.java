package io.overlay4j.micrometer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Measurement;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.UdpBackend;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two real nodes (udp backend: kernel TUN with offloads, rtnetlink, UDP sockets) in two network namespaces joined by
 * a veth pair, sharing a file-backed allocator; host1's node bound to a {@link SimpleMeterRegistry} and a
 * {@link PrometheusMeterRegistry}. UDP datagrams echoed between the hosts' overlay addresses make exact counts.
 */
class OverlayNodeMetricsKernelTest {
    private static final NetworkConfig CONFIG =
            NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
    private static final int ECHOES = 5;

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @TempDir
    Path dir;

    private LocalSubnetAllocator allocator;
    private OverlayNode node1;
    private OverlayNode node2;
    private OverlayNodeMetrics metrics;

    @AfterEach
    void closeNodes() {
        if (metrics != null) {
            metrics.close();
        }
        for (OverlayNode n : new OverlayNode[] {node2, node1}) {
            if (n != null) {
                n.close();
            }
        }
        if (allocator != null) {
            allocator.close();
        }
    }

    @Test
    void metersFollowTrafficPeersAndTheNodesLifeToClosed() throws Exception {
        NetworkNamespace host1 = namespaces.createWithLoopback();
        NetworkNamespace host2 = namespaces.createWithLoopback();
        String eth1 = namespaces.uniqueName();
        String eth2 = namespaces.uniqueName();
        namespaces.connect(host1, eth1, "10.99.0.1/24", host2, eth2, "10.99.0.2/24");
        allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json")).network(CONFIG)
                .pollInterval(Duration.ofMillis(50)).build();
        node1 = OverlayNode.builder().allocator(allocator).backend(UdpBackend.builder().build())
                .underlayInterface(eth1).threadFactory(host1.threadFactory()).build();
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        PrometheusMeterRegistry prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        metrics = new OverlayNodeMetrics(node1);
        metrics.bindTo(registry);
        metrics.bindTo(prometheus);
        assertEquals(1.0, gauge(registry, "overlay4j.node.state", "state", "starting"));
        assertEquals(0.0, counter(registry, "overlay4j.packets", "direction", "egress"));
        assertTrue(Double.isNaN(gauge(registry, "overlay4j.lease.remaining")));

        node1.start();
        node2 = OverlayNode.builder().allocator(allocator).backend(UdpBackend.builder().build())
                .underlayInterface(eth2).threadFactory(host2.threadFactory()).releaseOnClose(true).build().start();
        Ipv4Prefix subnet2 = node2.lease().subnet();
        String peer2 = subnet2.toString();
        await(() -> registry.find("overlay4j.peer.packets").tag("peer", peer2).functionCounter() != null,
                "meters for the peer " + peer2);
        assertEquals(1.0, gauge(registry, "overlay4j.node.state", "state", "ready"));
        assertEquals(0.0, gauge(registry, "overlay4j.node.state", "state", "starting"));
        assertEquals(1.0, gauge(registry, "overlay4j.store.reachable"));
        assertEquals(1.0, gauge(registry, "overlay4j.peers"));
        double remaining = gauge(registry, "overlay4j.lease.remaining");
        assertTrue(remaining > 3600 && remaining <= 86400, "lease remaining " + remaining);
        assertTrue(Double.isNaN(gauge(registry, "overlay4j.peer.last.seen", "peer", peer2)), "nothing received yet");
        String tun = node1.nodeStats().offloads().get(0).device();
        assertEquals(1.0, gauge(registry, "overlay4j.offload", "device", tun, "feature", "tun_vnet_header",
                "status", "on"), "the kernel grants virtio headers on a TUN");
        for (String feature : new String[] {"tun_vnet_header", "udp_gso", "udp_gro"}) {
            double sum = 0;
            for (Meter m : registry.find("overlay4j.offload").tag("feature", feature).meters()) {
                sum += ((Gauge) m).value();
            }
            assertEquals(1.0, sum, "one status per offload: " + feature);
        }

        // host1 → host2's overlay address and back, ECHOES times; then one datagram to a subnet nobody holds.
        long start = System.currentTimeMillis() / 1000;
        InetAddress address2 = subnet2.network();
        int received = echo(host1, host2, address2);
        assertEquals(ECHOES, received);
        host1.call(() -> {
            try (DatagramSocket s = new DatagramSocket()) {
                s.send(new DatagramPacket(new byte[10], 10, InetAddress.getByName("100.96.250.1"), 9));
            }
            return null;
        });
        await(() -> counter(registry, "overlay4j.drops", "reason", "no_route") == 1.0, "the no-route drop");
        // A packet is counted just after the send or TUN write it counts, which the echo may overtake: wait.
        await(() -> counter(registry, "overlay4j.peer.packets", "peer", peer2, "direction", "ingress") == ECHOES
                && counter(registry, "overlay4j.packets", "direction", "ingress") == ECHOES,
                "the echoes counted");
        long end = System.currentTimeMillis() / 1000 + 1;
        int payload = 20 + 8 + 100; // IPv4 + UDP headers + the echo's payload
        assertEquals(ECHOES, counter(registry, "overlay4j.peer.packets", "peer", peer2, "direction", "egress"));
        assertEquals(ECHOES * payload, counter(registry, "overlay4j.peer.bytes", "peer", peer2, "direction",
                "egress"));
        assertEquals(ECHOES * payload, counter(registry, "overlay4j.peer.bytes", "peer", peer2, "direction",
                "ingress"));
        assertEquals(ECHOES, counter(registry, "overlay4j.packets", "direction", "egress"));
        assertEquals(ECHOES, counter(registry, "overlay4j.packets", "direction", "ingress"));
        assertEquals(ECHOES * payload, counter(registry, "overlay4j.bytes", "direction", "ingress"));
        assertEquals(1.0, counter(registry, "overlay4j.icmp.sent"));
        double seen = gauge(registry, "overlay4j.peer.last.seen", "peer", peer2);
        assertTrue(seen >= start && seen <= end, "last seen " + seen + " within " + start + ".." + end);

        String text = prometheus.scrape();
        assertTrue(text.contains("overlay4j_packets_total{direction=\"egress\"} " + ECHOES), text);
        assertTrue(text.contains("overlay4j_peer_packets_total{direction=\"ingress\",peer=\"" + peer2 + "\"} "
                + ECHOES), text);
        assertTrue(text.contains("overlay4j_drops_total{reason=\"no_route\"} 1"), text);
        assertTrue(text.contains("overlay4j_node_state{state=\"ready\"} 1"), text);
        assertTrue(text.contains("overlay4j_lease_remaining_seconds "), text);
        assertTrue(text.contains("overlay4j_peer_last_seen_seconds{peer=\"" + peer2 + "\"} "), text);

        // host2 leaves (and releases its lease): its meters go, in both registries.
        node2.close();
        await(() -> registry.find("overlay4j.peer.packets").meters().isEmpty(), "the peer's meters removed");
        assertTrue(registry.find("overlay4j.peer.last.seen").meters().isEmpty());
        assertFalse(prometheus.scrape().contains(peer2), "gone from the Prometheus registry too");
        assertEquals(0.0, gauge(registry, "overlay4j.peers"));

        // A closed node reads as closed: the state says so, counters keep their values, nothing throws.
        node1.close();
        await(() -> gauge(registry, "overlay4j.node.state", "state", "closed") == 1.0, "closed");
        assertEquals(0.0, gauge(registry, "overlay4j.node.state", "state", "ready"));
        assertEquals(0.0, gauge(registry, "overlay4j.store.reachable"));
        assertTrue(Double.isNaN(gauge(registry, "overlay4j.lease.remaining")));
        assertEquals(ECHOES, counter(registry, "overlay4j.packets", "direction", "egress"));
        assertEquals(1.0, counter(registry, "overlay4j.drops", "reason", "no_route"));
        assertTrue(registry.find("overlay4j.offload").meters().isEmpty(), "a closed node has no devices");
        for (Meter m : registry.getMeters()) {
            for (Measurement measurement : m.measure()) {
                assertFalse(Double.isInfinite(measurement.getValue()), m.getId().toString());
            }
        }
        assertTrue(prometheus.scrape().contains("overlay4j_node_state{state=\"closed\"} 1"));

        metrics.close();
        assertTrue(registry.find("overlay4j.packets").meters().isEmpty(), "close() removes the meters");
        assertNull(prometheus.find("overlay4j.node.state").gauge());
        metrics = null;
    }

    /** host2 echoes UDP datagrams of 100 bytes to port 7 of its overlay address; host1 sends and counts echoes. */
    private static int echo(NetworkNamespace host1, NetworkNamespace host2, InetAddress address2) throws Exception {
        DatagramSocket server = host2.call(() -> new DatagramSocket(new InetSocketAddress(address2, 7)));
        Thread echoer = host2.newThread(() -> {
            byte[] buf = new byte[2048];
            try {
                for (int i = 0; i < ECHOES; i++) {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    server.receive(p);
                    server.send(new DatagramPacket(p.getData(), p.getLength(), p.getSocketAddress()));
                }
            } catch (java.io.IOException e) {
                // closed by the test
            }
        }, "echo");
        echoer.start();
        try {
            return host1.call(() -> {
                int got = 0;
                try (DatagramSocket client = new DatagramSocket()) {
                    client.setSoTimeout(5000);
                    for (int i = 0; i < ECHOES; i++) {
                        client.send(new DatagramPacket(new byte[100], 100, address2, 7));
                        DatagramPacket reply = new DatagramPacket(new byte[2048], 2048);
                        client.receive(reply);
                        got++;
                    }
                }
                return got;
            });
        } finally {
            server.close();
            echoer.join(TimeUnit.SECONDS.toMillis(5));
        }
    }

    private static double counter(MeterRegistry registry, String name, String... tags) {
        FunctionCounter c = registry.find(name).tags(tags).functionCounter();
        assertNotNull(c, () -> "no counter " + name + " " + String.join(",", tags));
        return c.count();
    }

    private static double gauge(MeterRegistry registry, String name, String... tags) {
        Gauge g = registry.find(name).tags(tags).gauge();
        assertNotNull(g, () -> "no gauge " + name + " " + String.join(",", tags));
        return g.value();
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(20);
        }
    }
}
