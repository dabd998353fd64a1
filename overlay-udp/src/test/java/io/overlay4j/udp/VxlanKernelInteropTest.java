package io.overlay4j.udp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunOptions;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link VxlanEncapsulator} on the {@link Forwarder} against the Linux kernel's own {@code vxlan} device, the way a
 * flanneld vxlan node programs it (flannel-facts §4), in two namespaces joined by a veth pair:
 *
 * <pre>
 *  kernel side (10.99.0.1)                                      overlay4j side (10.99.0.2)
 *  flannel.1 vxlan id 1 dstport 8472 nolearning, 100.96.1.0/32   TUN 100.96.2.0/32, route 100.96.1.0/24
 *    neigh 100.96.2.0 lladdr OUR_MAC permanent                    Forwarder + VxlanEncapsulator(1, OUR_MAC),
 *    fdb OUR_MAC dst 10.99.0.2 self permanent                     UdpSocket 10.99.0.2:8472, peer lease
 *    route 100.96.2.0/24 via 100.96.2.0 onlink                    {"VNI":1,"VtepMAC":KERNEL_MAC} at 10.99.0.1
 * </pre>
 *
 * Ping both ways, a TCP stream each way checked byte for byte, and datagrams a kernel peer never sends (ARP, another
 * VNI, another MAC, an unknown sender): dropped, counted, never answered. With and without offloads.
 */
class VxlanKernelInteropTest {
    private static final String KERNEL_MAC = "02:11:22:33:44:01";
    private static final String OUR_MAC = "02:11:22:33:44:02";
    private static final Ipv4Prefix KERNEL_SUBNET = Ipv4Prefix.parse("100.96.1.0/24");
    private static final Ipv4Prefix OUR_SUBNET = Ipv4Prefix.parse("100.96.2.0/24");
    private static final int STREAM_BYTES = 8 << 20;

    private final TestNamespaces namespaces = new TestNamespaces();
    private final ExecutorService threads = Executors.newCachedThreadPool();
    private NetworkNamespace kernel;
    private NetworkNamespace ours;
    private LinuxTunDevice tun;
    private UdpSocket socket;
    private Forwarder forwarder;

    @BeforeEach
    void requirements() {
        Requirements.requireKernelNetworking();
        Requirements.requireBinary("ping");
        Requirements.requireBinary("bridge");
        Requirements.requireBinary("ethtool");
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (forwarder != null) {
                forwarder.close();
                assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS), "forwarder threads stuck");
            }
            threads.shutdownNow();
            assertTrue(threads.awaitTermination(5, TimeUnit.SECONDS), "a test thread is stuck");
        } finally {
            namespaces.close();
        }
    }

    /**
     * @param mode {@code offloads}; {@code plain}; {@code gso-refused}: offloads asked for, but the socket behaves as
     *             on a kernel that refuses UDP GSO sends (it falls back to one datagram per segment);
     *             {@code tun-refuses}: offloads asked for, but the TUN comes up plain (the socket keeps GRO)
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"offloads", "plain", "gso-refused", "tun-refuses"})
    void userspaceVxlanTalksToTheKernelsVxlanDevice(String mode) throws Exception {
        boolean offloads = !mode.equals("plain");
        String property = mode.equals("gso-refused") ? UdpSocket.REFUSE_GSO_PROPERTY
                : mode.equals("tun-refuses") ? LinuxTunDevice.REFUSE_OFFLOADS_PROPERTY : null;
        if (property != null) {
            System.setProperty(property, "true");
        }
        try {
            setUp(offloads);
        } finally {
            if (property != null) {
                System.clearProperty(property);
            }
        }
        assertEquals(mode.equals("offloads") || mode.equals("gso-refused"), forwarder.vnetHeader(),
                "TUN offloads as asked and granted");
        assertEquals(offloads, socket.groEnabled());

        ping(kernel, "100.96.2.0");
        ping(ours, "100.96.1.0");
        stream(kernel, ours, new InetSocketAddress("100.96.2.0", 5001));
        stream(ours, kernel, new InetSocketAddress("100.96.1.0", 5002));
        assertEquals(!mode.equals("gso-refused"), socket.gsoSupported(), "GSO sends as the kernel allowed them");

        TrafficStats s = forwarder.stats();
        assertTrue(s.egressBytes() > STREAM_BYTES && s.ingressBytes() > STREAM_BYTES, s.toString());
        assertEquals(0, s.totalDrops() - s.drops(DropReason.NOT_IPV4), s.toString());

        // What a kernel VXLAN peer never sends us, from the kernel side's address and from a stranger's: once the
        // streams' last segments have settled, nothing may reach the TUN and nothing may go out.
        s = quiet();
        long egressBefore = s.egressPackets();
        long ingressBefore = s.ingressPackets();
        byte[] inner = Packets.ipv4(Packets.addr(100, 96, 1, 0), Packets.addr(100, 96, 2, 0), 17, 64, 60);
        DatagramChannel attacker = kernel.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("10.99.0.1", 0)));
        DatagramChannel stranger = kernel.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("10.99.0.9", 0)));
        try (attacker; stranger) {
            InetSocketAddress us = new InetSocketAddress("10.99.0.2", 8472);
            attacker.send(vxlan(1, OUR_MAC, 0x0806, new byte[28]), us); // ARP
            attacker.send(vxlan(1, OUR_MAC, 0x86dd, new byte[60]), us); // IPv6
            attacker.send(vxlan(2, OUR_MAC, 0x0800, inner), us);
            attacker.send(vxlan(1, "02:11:22:33:44:99", 0x0800, inner), us);
            attacker.send(vxlan(1, "ff:ff:ff:ff:ff:ff", 0x0800, inner), us);
            stranger.send(vxlan(1, OUR_MAC, 0x0800, inner), us);
            TrafficStats after = await(st -> st.drops(DropReason.BAD_ENCAPSULATION) == 3
                    && st.drops(DropReason.UNKNOWN_SENDER) == 1, "the forged datagrams dropped");
            assertTrue(after.drops(DropReason.NOT_IPV4) >= 2, after.toString());
            Thread.sleep(200);
            assertEquals(egressBefore, forwarder.stats().egressPackets(), "something was answered");
            assertEquals(ingressBefore, forwarder.stats().ingressPackets(), "a forged datagram reached the TUN");
            attacker.configureBlocking(false);
            assertNull(attacker.receive(ByteBuffer.allocate(2048)), "the attacker got an answer");
        }
    }

    private void setUp(boolean offloads) throws Exception {
        kernel = namespaces.create();
        ours = namespaces.create();
        namespaces.connect(kernel, "vk0", "10.99.0.1/24", ours, "vu0", "10.99.0.2/24");
        namespaces.ip(kernel, "addr", "add", "10.99.0.9/24", "dev", "vk0");
        namespaces.ip(kernel, "link", "add", "flannel.1", "address", KERNEL_MAC, "type", "vxlan", "id", "1", "local",
                "10.99.0.1", "dev", "vk0", "dstport", "8472", "nolearning");
        namespaces.ip(kernel, "link", "set", "flannel.1", "mtu", "1450");
        // Over a veth underlay no NIC finishes the inner TCP checksums the kernel leaves partial for offload: with
        // TX checksumming off the vxlan device computes them itself, as a NIC would on a real underlay. (A TUN never
        // sees this: the kernel completes checksums for it, or hands them over as NEEDS_CSUM with a virtio header.)
        namespaces.exec(kernel, "ethtool", "-K", "flannel.1", "tx", "off");
        namespaces.ip(kernel, "addr", "add", "100.96.1.0/32", "dev", "flannel.1");
        namespaces.ip(kernel, "link", "set", "flannel.1", "up");
        namespaces.ip(kernel, "neigh", "replace", "100.96.2.0", "lladdr", OUR_MAC, "dev", "flannel.1", "nud",
                "permanent");
        namespaces.exec(kernel, "bridge", "fdb", "append", OUR_MAC, "dev", "flannel.1", "dst", "10.99.0.2", "self",
                "permanent");
        namespaces.ip(kernel, "route", "replace", "100.96.2.0/24", "via", "100.96.2.0", "dev", "flannel.1",
                "onlink");

        VxlanEncapsulator vxlan = VxlanEncapsulator.of(1, OUR_MAC);
        assertEquals(1450, 1500 - vxlan.overhead());
        tun = ours.call(() -> LinuxTunDevice.open(new TunOptions("o4jvx%d", 1450, offloads)));
        try (NetlinkRouteProgrammer nl = ours.call(NetlinkRouteProgrammer::open)) {
            nl.addAddress(tun.name(), OUR_SUBNET.network(), 32);
            nl.setLinkUp(tun.name());
            nl.addRoute(Route.viaDevice(KERNEL_SUBNET, tun.name()));
        }
        socket = ours.call(() -> UdpSocket.open(new InetSocketAddress("10.99.0.2", VxlanEncapsulator.DEFAULT_PORT),
                UdpSocket.Options.builder().sendBufferSize(4 << 20).receiveBufferSize(4 << 20).gro(offloads).build()));
        Lease peer = new Lease(KERNEL_SUBNET, new LeaseAttributes(Ipv4Prefix.parseAddress("10.99.0.1"), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"" + KERNEL_MAC + "\"}"), Instant.now().plusSeconds(3600));
        forwarder = Forwarder.builder().tun(tun).socket(socket).encapsulator(vxlan).ownSubnet(OUR_SUBNET)
                .network(Ipv4Prefix.parse("100.96.0.0/16")).ownsTun(true).ownsSocket(true).build();
        forwarder.resetPeers(List.of(peer));
        assertEquals(1, forwarder.peers().size(), forwarder.peers().toString());
        ours.run(forwarder::start);
    }

    private static ByteBuffer vxlan(int vni, String dstMac, int etherType, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(22 + payload.length);
        b.putInt(0x08000000).putInt(vni << 8);
        for (String mac : new String[] {dstMac, KERNEL_MAC}) {
            for (String octet : mac.split(":")) {
                b.put((byte) Integer.parseInt(octet, 16));
            }
        }
        b.putShort((short) etherType).put(payload);
        return b.flip();
    }

    private void ping(NetworkNamespace from, String to) throws IOException {
        String out = TestNamespaces.exec(List.of("ip", "netns", "exec", from.name(), "ping", "-c", "3", "-i", "0.2",
                "-W", "3", to));
        assertTrue(out.contains("3 received"), out);
    }

    /** A TCP stream from a client in {@code from} to a server in {@code to}, checked byte for byte. */
    private void stream(NetworkNamespace from, NetworkNamespace to, InetSocketAddress server) throws Exception {
        ServerSocketChannel listener = to.call(() -> ServerSocketChannel.open().bind(server));
        SocketChannel client = from.call(SocketChannel::open);
        try (listener; client) {
            Future<Long> received = threads.submit(() -> {
                try (SocketChannel in = listener.accept()) {
                    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 16);
                    long at = 0;
                    while (true) {
                        buf.clear();
                        int n = in.read(buf);
                        if (n < 0) {
                            return at;
                        }
                        for (int i = 0; i < n; i++, at++) {
                            if (buf.get(i) != pattern(at)) {
                                throw new AssertionError("byte " + at + " differs");
                            }
                        }
                    }
                }
            });
            client.socket().connect(server, 10_000);
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 16);
            long at = 0;
            while (at < STREAM_BYTES) {
                buf.clear();
                int n = (int) Math.min(buf.capacity(), STREAM_BYTES - at);
                for (int i = 0; i < n; i++) {
                    buf.put(i, pattern(at + i));
                }
                buf.limit(n);
                while (buf.hasRemaining()) {
                    client.write(buf);
                }
                at += n;
            }
            client.shutdownOutput();
            assertEquals(STREAM_BYTES, received.get(Duration.ofSeconds(60).toSeconds(), TimeUnit.SECONDS),
                    "bytes received " + from.name() + " -> " + server);
        }
    }

    private static byte pattern(long i) {
        return (byte) (i ^ i >>> 8 ^ i >>> 16 ^ 0x5a);
    }

    /** The stats once they have not changed for 300 ms. */
    private TrafficStats quiet() throws InterruptedException {
        TrafficStats last = forwarder.stats();
        for (int i = 0; i < 50; i++) {
            Thread.sleep(300);
            TrafficStats now = forwarder.stats();
            if (now.equals(last)) {
                return now;
            }
            last = now;
        }
        throw new AssertionError("the forwarder never went quiet: " + last);
    }

    private TrafficStats await(Predicate<TrafficStats> condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        TrafficStats s = forwarder.stats();
        while (!condition.test(s)) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what + "; stats: " + s);
            }
            Thread.sleep(5);
            s = forwarder.stats();
        }
        return s;
    }
}
