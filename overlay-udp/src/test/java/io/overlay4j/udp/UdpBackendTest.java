package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Backend;
import io.overlay4j.DropReason;
import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OffloadStatus;
import io.overlay4j.OverlayException;
import io.overlay4j.PeerStats;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link UdpBackend} with in-memory TUNs and a recording route programmer; the data socket is real, on loopback
 * ({@code 127.0.0.5}, with a peer at {@code 127.0.0.6} on the same port).
 */
class UdpBackendTest {
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.5.0.0/16");
    private static final Ipv4Prefix OWN = Ipv4Prefix.parse("10.5.1.0/24");
    private static final Ipv4Prefix PEER = Ipv4Prefix.parse("10.5.2.0/24");
    private static final Inet4Address PUBLIC = Ipv4Prefix.parseAddress("192.0.2.10");
    private static final Inet4Address IFACE = Ipv4Prefix.parseAddress("127.0.0.5");

    private final InMemoryTunDevice.Factory tuns = InMemoryTunDevice.factory();
    private final RecordingRouteProgrammer routes = new RecordingRouteProgrammer();
    private final FakeContext ctx = new FakeContext();
    private final List<AutoCloseable> toClose = new ArrayList<>();
    private DatagramChannel peer;
    private int port;

    /** A node context whose config must not be read (the package-private register takes its values). */
    private static final class FakeContext implements Backend.Context {
        final List<LeaseAttributes> requested = new ArrayList<>();
        int interfaceMtu = 1500;

        @Override
        public NetworkConfig config() {
            throw new AssertionError("the config is not read on this path");
        }

        @Override
        public Inet4Address publicAddress() {
            return PUBLIC;
        }

        @Override
        public Inet4Address interfaceAddress() {
            return IFACE;
        }

        @Override
        public String interfaceName() {
            return "lo";
        }

        @Override
        public int interfaceMtu() {
            return interfaceMtu;
        }

        @Override
        public Lease acquireLease(LeaseAttributes attributes) {
            requested.add(attributes);
            return new Lease(OWN, attributes, Instant.now().plusSeconds(86400));
        }
    }

    private static Lease lease(Ipv4Prefix subnet, String publicIp) {
        return new Lease(subnet, LeaseAttributes.udp(Ipv4Prefix.parseAddress(publicIp)),
                Instant.now().plusSeconds(3600));
    }

    @BeforeEach
    void peerSocketOnAFreePort() throws IOException {
        for (int attempt = 0; ; attempt++) {
            try (DatagramChannel probe = DatagramChannel.open(StandardProtocolFamily.INET)) {
                probe.bind(new InetSocketAddress(IFACE, 0));
                port = ((InetSocketAddress) probe.getLocalAddress()).getPort();
            }
            DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
            try {
                ch.bind(new InetSocketAddress("127.0.0.6", port));
                peer = ch;
                return;
            } catch (IOException e) {
                ch.close();
                if (attempt > 20) {
                    throw e;
                }
            }
        }
    }

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable c : toClose) {
            c.close();
        }
        peer.close();
        assertTrue(forwarderThreads().isEmpty(), () -> "threads left: " + forwarderThreads());
    }

    private UdpBackend.UdpNetwork register(UdpBackend backend) throws IOException {
        UdpBackend.UdpNetwork net = backend.register(ctx, NETWORK, port);
        toClose.add(net);
        return net;
    }

    private UdpBackend.Builder builder() {
        return UdpBackend.builder().tunFactory(tuns).routes(() -> routes).port(port);
    }

    private static List<String> forwarderThreads() {
        List<String> names = new ArrayList<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().matches("overlay4j-(egress|ingress)-flannel0")) {
                names.add(t.getName());
            }
        }
        return names;
    }

    private boolean portFree() throws IOException {
        try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
            ch.bind(new InetSocketAddress(IFACE, port));
            return true;
        } catch (java.net.BindException e) {
            return false;
        }
    }

    private byte[] receiveAtPeer() throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(2048);
        peer.configureBlocking(false);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (peer.receive(buf) == null) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("nothing arrived at the peer");
            }
            Thread.onSpinWait();
        }
        return Arrays.copyOf(buf.array(), buf.position());
    }

    @Test
    void registerSetsUpLikeFlanneld() throws Exception {
        UdpBackend.UdpNetwork net = register(builder().build());
        assertEquals(1, tuns.opened().size());
        InMemoryTunDevice tun = tuns.opened().get(0);
        assertEquals("flannel0", tun.name());
        assertEquals(1472, tun.mtu());
        assertEquals(1472, net.mtu());
        assertEquals(List.of(LeaseAttributes.udp(PUBLIC)), ctx.requested);
        assertEquals(OWN, net.lease().subnet());
        assertEquals(List.of("addAddress flannel0 10.5.1.0/32", "setLinkUp flannel0",
                "addRoute 10.5.0.0/16 dev flannel0"), routes.calls);
        assertFalse(portFree(), "the data socket is bound to the interface address and port");
        assertEquals("udp", UdpBackend.builder().tunFactory(tuns).routes(routes).build().type());
    }

    @Test
    void peersAreAppliedAndTrafficFlows() throws Exception {
        UdpBackend.UdpNetwork net = register(builder().build());
        InMemoryTunDevice tun = tuns.opened().get(0);
        net.peersChanged(List.of(LeaseEvent.added(lease(PEER, "127.0.0.6"))));
        assertEquals(new InetSocketAddress("127.0.0.6", port), net.peers().lookup(addr(10, 5, 2, 1)).endpoint());

        byte[] out = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 9), 17, 64, 100);
        tun.inject(out);
        assertArrayEquals(Packets.withTtlDecremented(out, 1), receiveAtPeer());

        byte[] in = Packets.ipv4(addr(10, 5, 2, 9), addr(10, 5, 1, 7), 6, 64, 80);
        peer.send(ByteBuffer.wrap(in), new InetSocketAddress(IFACE, port));
        byte[] written = tun.takeWritten(10, TimeUnit.SECONDS);
        assertNotNull(written);
        assertArrayEquals(Packets.withTtlDecremented(in, 1), written);

        net.peersChanged(List.of(LeaseEvent.removed(lease(PEER, "127.0.0.6"))));
        tun.inject(out);
        byte[] icmp = tun.takeWritten(10, TimeUnit.SECONDS);
        assertNotNull(icmp);
        assertEquals(1, icmp[9], "ICMP");
        assertEquals(addr(10, 5, 1, 0), Ipv4Prefix.toInt((Inet4Address) java.net.InetAddress.getByAddress(
                Arrays.copyOfRange(icmp, 12, 16))), "from the own subnet's network address");

        net.resetPeers(List.of(lease(PEER, "127.0.0.6")));
        tun.inject(out);
        assertArrayEquals(Packets.withTtlDecremented(out, 1), receiveAtPeer());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        // Counters are bumped just after the send or write they count: wait for all of them.
        while ((net.stats().egressPackets() < 2 || net.stats().ingressPackets() < 1 || net.stats().icmpSent() < 1)
                && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(2, net.stats().egressPackets());
        assertEquals(1, net.stats().ingressPackets());
        assertEquals(1, net.stats().drops(DropReason.NO_ROUTE));
        assertEquals(1, net.stats().icmpSent());
        // The peer left and came back after one packet each way: its counters restarted with it.
        assertEquals(List.of(new PeerStats(PEER, 1, 100, 0, 0, null)), net.peerStats());
    }

    @Test
    void offloadsSayWhatWasAskedForAndWhatTheKernelGranted() throws Exception {
        UdpBackend.UdpNetwork plain = register(builder().offloads(false).build());
        assertEquals(List.of(new OffloadStatus("flannel0", OffloadStatus.Feature.TUN_VNET_HEADER,
                        OffloadStatus.Status.OFF),
                new OffloadStatus("lo", OffloadStatus.Feature.UDP_GSO, OffloadStatus.Status.OFF),
                new OffloadStatus("lo", OffloadStatus.Feature.UDP_GRO, OffloadStatus.Status.OFF)), plain.offloads());
        plain.close();
        assertEquals(List.of(), plain.offloads(), "none once closed");

        // The in-memory TUN never grants virtio headers (as a kernel that refuses them); loopback has GSO and GRO.
        UdpBackend.UdpNetwork offloaded = register(builder().build());
        assertEquals(List.of(new OffloadStatus("flannel1", OffloadStatus.Feature.TUN_VNET_HEADER,
                        OffloadStatus.Status.REFUSED),
                new OffloadStatus("lo", OffloadStatus.Feature.UDP_GSO, OffloadStatus.Status.ON),
                new OffloadStatus("lo", OffloadStatus.Feature.UDP_GRO, OffloadStatus.Status.ON)),
                offloaded.offloads());
    }

    @Test
    void closeUndoesEverythingOnce() throws Exception {
        UdpBackend.UdpNetwork net = register(builder().build());
        InMemoryTunDevice tun = tuns.opened().get(0);
        net.close();
        assertEquals(List.of("addAddress flannel0 10.5.1.0/32", "setLinkUp flannel0",
                "addRoute 10.5.0.0/16 dev flannel0", "deleteRoute 10.5.0.0/16 dev flannel0", "close"), routes.calls);
        assertFalse(tun.isOpen());
        assertTrue(portFree());
        assertTrue(forwarderThreads().isEmpty(), () -> forwarderThreads().toString());
        net.close();
        assertEquals(5, routes.calls.size(), "idempotent");
        net.peersChanged(List.of(LeaseEvent.added(lease(PEER, "127.0.0.6"))));
        assertEquals(0, net.peers().size(), "peers after close are ignored");
    }

    @Test
    void aCallerOwnedRouteProgrammerIsNotClosed() throws Exception {
        UdpBackend.UdpNetwork net = register(UdpBackend.builder().tunFactory(tuns).routes(routes).port(port).build());
        net.close();
        assertFalse(routes.calls.contains("close"), routes.calls::toString);
        assertTrue(routes.calls.contains("deleteRoute 10.5.0.0/16 dev flannel0"));
    }

    @Test
    void aFailedRouteCleansUpWhatWasCreated() throws Exception {
        routes.failOn("addRoute");
        UdpBackend backend = builder().build();
        ErrnoException e = assertThrows(ErrnoException.class, () -> backend.register(ctx, NETWORK, port));
        assertEquals(ErrnoException.EPERM, e.errno());
        assertFalse(tuns.opened().get(0).isOpen());
        assertEquals(List.of("addAddress flannel0 10.5.1.0/32", "setLinkUp flannel0",
                "addRoute 10.5.0.0/16 dev flannel0", "close"), routes.calls);
        assertTrue(portFree());
    }

    @Test
    void aFailedBindCleansUpWhatWasCreated() throws Exception {
        try (DatagramChannel squatter = DatagramChannel.open(StandardProtocolFamily.INET)) {
            squatter.bind(new InetSocketAddress(IFACE, port));
            UdpBackend backend = builder().build();
            io.overlay4j.ErrnoException e = assertThrows(io.overlay4j.ErrnoException.class,
                    () -> backend.register(ctx, NETWORK, port));
            assertEquals(98, e.errno(), e.getMessage()); // EADDRINUSE, and the message names bind(address:port)
            assertTrue(e.getMessage().startsWith("bind("), e.getMessage());
        }
        assertFalse(tuns.opened().get(0).isOpen());
        assertEquals(List.of("addAddress flannel0 10.5.1.0/32", "setLinkUp flannel0",
                "addRoute 10.5.0.0/16 dev flannel0", "deleteRoute 10.5.0.0/16 dev flannel0", "close"), routes.calls);
    }

    @Test
    void aFailedTunOpenTouchesNothingElse() {
        tuns.failOpens(new ErrnoException("ioctl(TUNSETIFF)", ErrnoException.EPERM));
        UdpBackend backend = builder().build();
        assertThrows(ErrnoException.class, () -> backend.register(ctx, NETWORK, port));
        assertTrue(ctx.requested.isEmpty(), "no lease acquired");
        assertTrue(routes.calls.isEmpty(), routes.calls::toString);
    }

    @Test
    void closeKeepsTheFirstFailureAndSuppressesTheRest() throws Exception {
        UdpBackend.UdpNetwork net = register(builder().build());
        routes.failOn("deleteRoute").failClose();
        OverlayException e = assertThrows(OverlayException.class, net::close);
        assertEquals(OverlayException.Kind.DEVICE, e.kind());
        assertInstanceOf(ErrnoException.class, e.getCause());
        assertEquals(1, e.getCause().getSuppressed().length);
        assertEquals("test: close failed", e.getCause().getSuppressed()[0].getMessage());
        assertFalse(tuns.opened().get(0).isOpen(), "later steps still ran");
        assertTrue(portFree());
    }

    @Test
    void tunMtuIsTheInterfaceMtuMinus28() throws Exception {
        ctx.interfaceMtu = 9001;
        UdpBackend.UdpNetwork net = register(builder().build());
        assertEquals(8973, net.mtu());
        assertEquals(8973, tuns.opened().get(0).mtu());
    }

    @Test
    void builderChecks() {
        // Unset TUN factory and route programmer fall back to the Linux ones; building touches no kernel yet.
        assertNotNull(UdpBackend.builder().build());
        assertThrows(IllegalArgumentException.class, () -> UdpBackend.builder().port(0));
        assertThrows(IllegalArgumentException.class, () -> UdpBackend.builder().socketBufferSize(0));
        UdpBackend backend = builder().build();
        assertThrows(OverlayException.class, () -> backend.register(ctx, NETWORK, 70000));
        assertTrue(tuns.opened().isEmpty());
    }
}
