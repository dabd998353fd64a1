package com.example.consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.OverlayNode;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** Two embedded nodes, each in its own network namespace, lease from a real etcd and carry a datagram. */
@Timeout(120)
class ConsumerAppTest {
    @RegisterExtension
    static final EtcdServerExtension ETCD = new EtcdServerExtension();

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @TempDir
    Path dir;

    @Test
    void twoEmbeddedNodesCarryADatagramAcrossTheOverlay() throws Exception {
        ETCD.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        NetworkNamespace host1 = namespaces.create();
        NetworkNamespace host2 = namespaces.create();
        namespaces.connect(host1, "o4jt-h1", "10.168.0.2/24", host2, "o4jt-h2", "10.168.0.3/24");

        // Built here, in the root namespace where etcd listens: it reaches etcd from here whoever calls it.
        try (EtcdSubnetAllocator allocator = EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).build()) {
            try (OverlayNode node1 = ConsumerApp.join(allocator, host1.name(), "o4jt-h1", dir.resolve("1.env"));
                 OverlayNode node2 = ConsumerApp.join(allocator, host2.name(), "o4jt-h2", dir.resolve("2.env"))) {
                Ipv4Prefix subnet1 = node1.lease().subnet();
                Ipv4Prefix subnet2 = node2.lease().subnet();
                assertNotEquals(subnet1, subnet2);
                assertTrue(Ipv4Prefix.parse("100.96.0.0/16").contains(subnet2), subnet2.toString());
                assertTrue(Files.readString(dir.resolve("1.env")).contains("FLANNEL_SUBNET="),
                        "flannel's subnet file");
                String keys = ETCD.etcdctl("get", "--prefix", "--keys-only", "/coreos.com/network/subnets");
                assertTrue(keys.contains(subnet1.toSubnetKey()) && keys.contains(subnet2.toSubnetKey()), keys);
                awaitPeer(node1, node2);

                // A "container" address of host2's subnet, on host2's loopback, receives from host1 via flannel0.
                Inet4Address target = Ipv4Prefix.fromInt(subnet2.networkInt() + 1);
                namespaces.ip(host2, "addr", "add", target.getHostAddress() + "/32", "dev", "lo");
                byte[] hello = "hello across the overlay".getBytes(StandardCharsets.US_ASCII);
                try (DatagramChannel rx = host2.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                        .bind(new InetSocketAddress(target, 0)))) {
                    rx.configureBlocking(false);
                    InetSocketAddress to = (InetSocketAddress) rx.getLocalAddress();
                    ByteBuffer got = ByteBuffer.allocate(256);
                    InetSocketAddress from = null;
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    while (from == null && System.nanoTime() < deadline) {
                        host1.run(() -> {
                            try (DatagramChannel tx = DatagramChannel.open(StandardProtocolFamily.INET)) {
                                tx.send(ByteBuffer.wrap(hello), to);
                            }
                        });
                        Thread.sleep(100);
                        from = (InetSocketAddress) rx.receive(got);
                    }
                    assertTrue(from != null, "no datagram across the overlay; host1 stats " + node1.stats());
                    assertEquals(new String(hello, StandardCharsets.US_ASCII),
                            new String(got.array(), 0, got.position(), StandardCharsets.US_ASCII));
                    assertTrue(subnet1.contains((Inet4Address) from.getAddress()), "sent from host1's subnet: " + from);
                }
            }
        }
    }

    private static void awaitPeer(OverlayNode node, OverlayNode peer) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (node.peers().stream().noneMatch(l -> l.subnet().equals(peer.lease().subnet()))) {
            assertTrue(System.nanoTime() < deadline, "node never saw its peer: " + node.peers());
            Thread.sleep(50);
        }
    }
}
