package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control plane against the real file allocator and a recording backend (no kernel): lease, subnet.env, peers,
 * renewal, loss and restart.
 */
class OverlayNodeTest {
    private static final NetworkConfig CONFIG =
            NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");

    @TempDir
    Path dir;

    private final List<AutoCloseable> closeables = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = closeables.size() - 1; i >= 0; i--) {
            closeables.get(i).close();
        }
    }

    private LocalSubnetAllocator allocator(Duration ttl) {
        LocalSubnetAllocator a = LocalSubnetAllocator.builder().file(dir.resolve("leases.json")).network(CONFIG)
                .leaseTtl(ttl).pollInterval(Duration.ofMillis(20)).build();
        closeables.add(a);
        return a;
    }

    private OverlayNode node(SubnetAllocator allocator, RecordingBackend backend, String ip, String envName) {
        OverlayNode n = OverlayNode.builder().allocator(allocator).backend(backend).underlayInterface("lo")
                .publicAddress(Ipv4Prefix.parseAddress(ip)).subnetFile(dir.resolve(envName)).build().start();
        closeables.add(n);
        return n;
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(10);
        }
    }

    @Test
    void startLeasesConfiguresTheBackendAndWritesSubnetEnv() throws Exception {
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = node(allocator(Duration.ofHours(24)), backend, "127.0.0.2", "a.env");
        Ipv4Prefix subnet = node.lease().subnet();
        assertEquals(24, subnet.length());
        assertTrue(CONFIG.network().contains(subnet));
        assertEquals(Ipv4Prefix.parseAddress("127.0.0.2"), node.lease().attributes().publicIp());
        assertEquals(65536 - 28, node.mtu());
        assertEquals("FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=" + subnet.addressAt(1).getHostAddress()
                        + "/24\nFLANNEL_MTU=65508\nFLANNEL_IPMASQ=false\n",
                Files.readString(dir.resolve("a.env")));
        node.close();
        assertTrue(backend.closed, "backend network not closed");
    }

    @Test
    void peersAreFollowedAndOwnLeaseIsNotAPeer() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        RecordingBackend b1 = new RecordingBackend();
        OverlayNode n1 = node(alloc, b1, "127.0.0.2", "a.env");
        RecordingBackend b2 = new RecordingBackend();
        OverlayNode n2 = OverlayNode.builder().allocator(alloc).backend(b2).underlayInterface("lo")
                .publicAddress(Ipv4Prefix.parseAddress("127.0.0.3")).subnetFile(null).releaseOnClose(true).build()
                .start();
        await(() -> b1.peers.containsKey(n2.lease().subnet()), "node1 to learn node2");
        await(() -> b2.peers.containsKey(n1.lease().subnet()), "node2 to learn node1");
        assertEquals(List.of(n2.lease()), n1.peers());
        assertTrue(!b1.peers.containsKey(n1.lease().subnet()));
        Ipv4Prefix gone = n2.lease().subnet();
        n2.close();
        await(() -> !b1.peers.containsKey(gone), "node1 to drop node2 after it released its lease");
        assertTrue(n1.peers().isEmpty());
    }

    @Test
    void restartPrefersThePreviousSubnetFromTheSubnetFile() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        OverlayNode first = OverlayNode.builder().allocator(alloc).backend(new RecordingBackend())
                .underlayInterface("lo").publicAddress(Ipv4Prefix.parseAddress("127.0.0.2"))
                .subnetFile(dir.resolve("a.env")).releaseOnClose(true).build().start();
        Ipv4Prefix subnet = first.lease().subnet();
        first.close();
        // Another public address, so reuse-by-address cannot explain it: only the subnet file can.
        OverlayNode again = node(alloc, new RecordingBackend(), "127.0.0.9", "a.env");
        assertEquals(subnet, again.lease().subnet());
    }

    @Test
    void renewsBeforeExpiry() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofSeconds(2));
        OverlayNode node = node(alloc, new RecordingBackend(), "127.0.0.2", "a.env");
        Instant firstExpiry = node.lease().expiration();
        Thread.sleep(3000);
        Lease stored = alloc.leases().stream().filter(l -> l.subnet().equals(node.lease().subnet())).findFirst()
                .orElseThrow(() -> new AssertionError("lease expired: it was not renewed"));
        assertTrue(stored.expiration().isAfter(firstExpiry), "expiration not extended");
    }

    @Test
    void aLostLeaseIsReacquired() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        OverlayNode node = node(alloc, new RecordingBackend(), "127.0.0.2", "a.env");
        Lease lease = node.lease();
        alloc.release(lease);
        await(() -> alloc.leases().stream().anyMatch(l -> l.subnet().equals(lease.subnet())),
                "the node to re-acquire its subnet");
        assertEquals(lease.subnet(), node.lease().subnet());
    }

    @Test
    void aBackendOfAnotherTypeIsRefused() {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        RecordingBackend vx = new RecordingBackend("vxlan");
        OverlayException e = assertThrows(OverlayException.class,
                () -> node(alloc, vx, "127.0.0.2", "a.env"));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(alloc.leases().isEmpty(), "no lease may be taken for a refused backend");
    }

    @Test
    void missingInterfaceIsAClearError() {
        OverlayException e = assertThrows(OverlayException.class, () -> OverlayNode.builder()
                .allocator(allocator(Duration.ofHours(1))).backend(new RecordingBackend())
                .underlayInterface("nosuch0").build());
        assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, e.kind());
        assertTrue(e.getMessage().contains("nosuch0"), e.getMessage());
        assertNotEquals(null, e.getMessage());
    }

    /** A backend that only records what the node tells it. */
    static final class RecordingBackend implements Backend {
        final String type;
        final Map<Ipv4Prefix, Lease> peers = new ConcurrentHashMap<>();
        volatile boolean closed;

        RecordingBackend() {
            this("udp");
        }

        RecordingBackend(String type) {
            this.type = type;
        }

        @Override
        public String type() {
            return type;
        }

        @Override
        public Network register(Context context) throws IOException {
            Inet4Address ip = context.publicAddress();
            Lease lease = context.acquireLease(LeaseAttributes.udp(ip));
            int mtu = context.interfaceMtu() - 28;
            return new Network() {
                @Override
                public Lease lease() {
                    return lease;
                }

                @Override
                public int mtu() {
                    return mtu;
                }

                @Override
                public void peersChanged(List<LeaseEvent> events) {
                    for (LeaseEvent e : events) {
                        if (e.type() == LeaseEvent.Type.ADDED) {
                            peers.put(e.lease().subnet(), e.lease());
                        } else {
                            peers.remove(e.lease().subnet());
                        }
                    }
                }

                @Override
                public void resetPeers(List<Lease> all) {
                    peers.clear();
                    all.forEach(l -> peers.put(l.subnet(), l));
                }

                @Override
                public TrafficStats stats() {
                    return new TrafficStats(0, 0, 0, 0, 0, new EnumMap<>(DropReason.class));
                }

                @Override
                public void close() {
                    closed = true;
                }
            };
        }
    }
}
