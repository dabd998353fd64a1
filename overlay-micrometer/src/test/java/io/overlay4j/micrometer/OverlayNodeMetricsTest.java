package io.overlay4j.micrometer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Measurement;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.testing.InMemoryRouteProgrammer;
import io.overlay4j.udp.UdpBackend;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The binder on nodes that never ran, and on a udp node over an in-memory TUN: no kernel objects needed. */
class OverlayNodeMetricsTest {
    private static final NetworkConfig CONFIG =
            NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");

    @TempDir
    Path dir;

    private OverlayNode node(LocalSubnetAllocator allocator, String underlay) {
        return OverlayNode.builder().allocator(allocator).backend(UdpBackend.builder().build())
                .underlayInterface(underlay).build();
    }

    @Test
    void everyMeterIsThereBeforeTheStartAndAFailedStartReadsClosed() {
        try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder().file(dir.resolve("l.json"))
                .network(CONFIG).build();
             OverlayNode node = node(allocator, "no-such-if0");
             OverlayNodeMetrics metrics = new OverlayNodeMetrics(node, Tags.of("node", "n1"))) {
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            metrics.bindTo(registry);
            Set<String> names = new TreeSet<>();
            for (Meter m : registry.getMeters()) {
                names.add(m.getId().getName());
                assertEquals("n1", m.getId().getTag("node"), m.getId().toString());
            }
            assertEquals(Set.of("overlay4j.packets", "overlay4j.bytes", "overlay4j.icmp.sent", "overlay4j.drops",
                    "overlay4j.peers", "overlay4j.lease.remaining", "overlay4j.store.reachable",
                    "overlay4j.node.state"), names, "no peer or offload meters before there are peers and devices");
            assertEquals(DropReason.values().length, registry.find("overlay4j.drops").meters().size());
            assertEquals(1.0, registry.get("overlay4j.node.state").tag("state", "starting").gauge().value());
            assertEquals(0.0, registry.get("overlay4j.store.reachable").gauge().value());

            OverlayException e = assertThrows(OverlayException.class, node::start);
            assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, e.kind());
            readAll(registry);
            assertEquals(1.0, registry.get("overlay4j.node.state").tag("state", "closed").gauge().value());
            assertEquals(0.0, registry.get("overlay4j.node.state").tag("state", "starting").gauge().value());
            assertEquals(0.0, registry.get("overlay4j.packets").tag("direction", "egress").functionCounter().count());
            assertTrue(Double.isNaN(registry.get("overlay4j.lease.remaining").gauge().value()));

            metrics.close();
            assertTrue(registry.getMeters().isEmpty(), registry.getMeters().toString());
            assertThrows(IllegalStateException.class, () -> metrics.bindTo(registry));
            metrics.close();
        }
    }

    @Test
    void oneBinderServesSeveralRegistriesAndTagsTellNodesApart() {
        try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder().file(dir.resolve("l.json"))
                .network(CONFIG).build();
             OverlayNode a = node(allocator, "lo");
             OverlayNode b = node(allocator, "lo");
             OverlayNodeMetrics ma = new OverlayNodeMetrics(a, Tags.of("node", "a"));
             OverlayNodeMetrics mb = new OverlayNodeMetrics(b, Tags.of("node", "b"))) {
            SimpleMeterRegistry shared = new SimpleMeterRegistry();
            SimpleMeterRegistry own = new SimpleMeterRegistry();
            ma.bindTo(shared);
            mb.bindTo(shared);
            ma.bindTo(own);
            assertEquals(2, shared.find("overlay4j.store.reachable").meters().size());
            assertEquals(1, own.find("overlay4j.store.reachable").meters().size());
            b.close();
            assertEquals(1.0, shared.get("overlay4j.node.state").tags("node", "b", "state", "closed").gauge()
                    .value());
            assertEquals(1.0, shared.get("overlay4j.node.state").tags("node", "a", "state", "starting").gauge()
                    .value());
            ma.close();
            assertTrue(own.getMeters().isEmpty());
            assertEquals(Set.of("b"), tagValues(shared, "node"));
        }
    }

    /**
     * A running udp node (in-memory TUN, a real data socket on loopback) whose network fills with 60 other hosts'
     * leases and loses 20: per-peer meters appear and go with them, in batches (a resync is one reconcile).
     */
    @Test
    void perPeerMetersFollowManyPeersComingAndGoing() throws Exception {
        try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder().file(dir.resolve("l.json"))
                .network(CONFIG).pollInterval(Duration.ofMillis(20)).build();
             OverlayNode node = OverlayNode.builder().allocator(allocator)
                     .backend(UdpBackend.builder().tunFactory(InMemoryTunDevice.factory()).routes(new InMemoryRouteProgrammer().addDevice("flannel0"))
                             .port(freePort()).build())
                     .underlayInterface("lo").publicAddress(Ipv4Prefix.parseAddress("192.0.2.2")).build();
             OverlayNodeMetrics metrics = new OverlayNodeMetrics(node)) {
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            metrics.bindTo(registry);
            node.start();
            List<Lease> others = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                others.add(allocator.acquire(LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.0.2." + (10 + i))),
                        null));
            }
            await(() -> registry.find("overlay4j.peer.last.seen").meters().size() == 60, "60 peers' meters");
            assertEquals(120, registry.find("overlay4j.peer.packets").meters().size());
            assertEquals(60.0, registry.get("overlay4j.peers").gauge().value());
            Lease first = others.get(0);
            assertEquals(0.0, registry.get("overlay4j.peer.packets").tags("peer", first.subnet().toString(),
                    "direction", "egress").functionCounter().count());
            assertTrue(Double.isNaN(registry.get("overlay4j.peer.last.seen").tag("peer", first.subnet().toString())
                    .gauge().value()), "nothing received from it");
            for (Lease gone : others.subList(0, 20)) {
                allocator.release(gone);
            }
            await(() -> registry.find("overlay4j.peer.last.seen").meters().size() == 40, "40 peers' meters");
            assertTrue(registry.find("overlay4j.peer.packets").tag("peer", first.subnet().toString()).meters()
                    .isEmpty(), "a departed peer's meters are removed");
            Set<String> features = new TreeSet<>();
            registry.find("overlay4j.offload").meters().forEach(m -> features.add(m.getId().getTag("feature")));
            assertEquals(Set.of("tun_vnet_header", "udp_gso", "udp_gro"), features);
        }
    }

    private static int freePort() throws IOException {
        try (DatagramSocket probe = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            return probe.getLocalPort();
        }
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    private static Set<String> tagValues(SimpleMeterRegistry registry, String key) {
        Set<String> values = new TreeSet<>();
        for (Meter m : registry.getMeters()) {
            values.add(m.getId().getTag(key));
        }
        return values;
    }

    /** Reads every meter: a node that is not running must read as such, not throw. */
    private static void readAll(SimpleMeterRegistry registry) {
        for (Meter m : registry.getMeters()) {
            for (Measurement measurement : m.measure()) {
                double v = measurement.getValue();
                assertTrue(!Double.isInfinite(v), m.getId().toString());
            }
            if (m instanceof Gauge) {
                ((Gauge) m).value();
            }
        }
    }
}
