package io.overlay4j.udp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** {@link UdpBackend} against the kernel, in a namespace of its own. */
class UdpBackendKernelTest {
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @TempDir
    Path dir;

    @BeforeEach
    void requireKernelNetworking() {
        Requirements.requireKernelNetworking();
    }

    /**
     * In a namespace whose loopback is down (as {@code ip netns add} leaves it) a datagram to the node's own address
     * is never delivered, so it cannot wake the receiving thread: closing the node must not depend on it.
     */
    @Test
    void closeIsPromptWhereLoopbackIsDown() throws Exception {
        NetworkNamespace ns = namespaceWithoutLoopback();
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        for (boolean offloads : new boolean[] {true, false}) {
            Set<Thread> before = Thread.getAllStackTraces().keySet();
            long closed;
            try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder()
                    .file(Files.createTempFile(dir, "leases", ".json")).network(config).build()) {
                OverlayNode node = OverlayNode.builder().allocator(allocator)
                        .backend(UdpBackend.builder().offloads(offloads).build())
                        .underlayInterface("o4ua").threadFactory(ns.threadFactory()).build().start();
                assertEquals(OverlayNode.State.READY, node.state());
                long start = System.nanoTime();
                node.close();
                closed = System.nanoTime() - start;
            }
            assertTrue(closed < TimeUnit.SECONDS.toNanos(3), "close took " + closed / 1_000_000 + " ms (offloads "
                    + offloads + ")");
            Set<String> left = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> !before.contains(t) && t.isAlive() && t.getName().contains("gress"))
                    .map(Thread::getName).collect(Collectors.toSet());
            assertTrue(left.isEmpty(), "forwarder threads left: " + left);
        }
    }

    /**
     * The same for a forwarder that does not own its socket: it cannot close it, and a datagram to itself would not
     * arrive, so {@link io.overlay4j.tun.UdpSocket#wakeup()} must end its receiving thread, leaving the socket open.
     */
    @Test
    void forwarderWithABorrowedSocketClosesPromptlyWhereLoopbackIsDown() throws Exception {
        NetworkNamespace ns = namespaceWithoutLoopback();
        for (boolean pollable : new boolean[] {true, false}) {
            try (UdpSocket socket = ns.call(() -> UdpSocket.open(new InetSocketAddress("10.168.0.2", 0),
                    UdpSocket.Options.defaults()));
                 InMemoryTunDevice tun = new InMemoryTunDevice("o4uf", 1472)) {
                tun.pollable(pollable); // the turns loop, or the loop of a device that cannot be polled
                Forwarder forwarder = Forwarder.builder().tun(tun).socket(socket).ownSubnet(
                        Ipv4Prefix.parse("100.96.1.0/24")).warmUp(false).threadFactory(ns.threadFactory()).build();
                forwarder.start();
                Thread.sleep(200); // the receiving thread is waiting
                long start = System.nanoTime();
                forwarder.close();
                long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                assertTrue(millis < 1000, "close took " + millis + " ms (pollable " + pollable + ")");
                assertTrue(socket.isOpen(), "the socket is its owner's");
                tun.close(); // ends the egress thread, which waits on the TUN the forwarder does not own
                assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS), "threads ended");
            }
        }
    }

    /** A namespace whose loopback is down, with a veth end up at 10.168.0.2/24. */
    private NetworkNamespace namespaceWithoutLoopback() throws Exception {
        NetworkNamespace ns = namespaces.create();
        try (NetlinkRouteProgrammer rp = ns.call(NetlinkRouteProgrammer::open)) {
            rp.createVethPair("o4ua", "o4ub");
            rp.addAddress("o4ua", Ipv4Prefix.parseAddress("10.168.0.2"), 24);
            rp.setLinkUp("o4ua");
            rp.setLinkUp("o4ub");
        }
        assertTrue(namespaces.ip(ns, "link", "show", "lo").contains("state DOWN"), "loopback is down");
        return ns;
    }
}
