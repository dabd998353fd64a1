package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.TunOptions;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.testing.Packets;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A forwarder on a real TUN device whose egress thread parks while the TUN is quiet, the ingress thread then serving
 * both directions: traffic in both directions still flows at once, in and out of that state, and a forwarder that
 * owns neither device still stops promptly. One namespace: TUN {@code o4js0} (100.96.1.0/32, route 100.96.0.0/16),
 * the forwarder's socket on 127.0.0.1, and a peer for 100.96.2.0/24 that is a plain datagram channel on 127.0.0.2.
 */
class ForwarderSoloKernelTest {
    private static final Ipv4Prefix OWN = Ipv4Prefix.parse("100.96.1.0/24");
    private static final Ipv4Prefix PEER = Ipv4Prefix.parse("100.96.2.0/24");

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private final List<AutoCloseable> resources = new ArrayList<>();
    private NetworkNamespace ns;
    private LinuxTunDevice tun;
    private UdpSocket socket;
    private DatagramChannel peer;
    private DatagramChannel app;
    private Forwarder forwarder;
    /** The kernel's thread id of each of the forwarder's threads, by thread name. */
    private final Map<String, Long> tids = new ConcurrentHashMap<>();

    @BeforeEach
    void setUp() throws Exception {
        Requirements.requireKernelNetworking();
        ns = namespaces.createWithLoopback();
        tun = track(ns.call(() -> LinuxTunDevice.open(TunOptions.defaults().withName("o4js%d"))));
        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            p.addAddress(tun.name(), Ipv4Prefix.parseAddress("100.96.1.0"), 32);
            p.setLinkUp(tun.name());
            p.addRoute(Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), tun.name()));
        }
        socket = track(ns.call(() -> UdpSocket.open(new InetSocketAddress("127.0.0.1", 0),
                UdpSocket.Options.defaults())));
        int port = socket.localAddress().getPort();
        peer = track(ns.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("127.0.0.2", port))));
        // The container side: a UDP socket on the TUN's own address, which the kernel delivers ingress packets to.
        app = track(ns.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("100.96.1.0", 7000))));
        startForwarder();
    }

    private void startForwarder() {
        int port = socket.localAddress().getPort();
        forwarder = Forwarder.builder().tun(tun).socket(socket).port(port).ownSubnet(OWN)
                .network(Ipv4Prefix.parse("100.96.0.0/16"))
                .peers(PeerTable.builder().put(ForwarderTest.lease(PEER, addr(127, 0, 0, 2)), port).build())
                .threadFactory(recordingTids(ns.threadFactory())).build();
        resources.add(forwarder::close);
        forwarder.start();
    }

    /** Replaces the forwarder with one whose quiet-node thread waits without a tick (no turns of its own). */
    private void restartWithoutTick() throws Exception {
        forwarder.close();
        assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS));
        tids.clear();
        String old = System.setProperty(Forwarder.SOLO_TICK_MILLIS_PROPERTY, "0");
        try {
            startForwarder();
        } finally {
            if (old == null) {
                System.clearProperty(Forwarder.SOLO_TICK_MILLIS_PROPERTY);
            } else {
                System.setProperty(Forwarder.SOLO_TICK_MILLIS_PROPERTY, old);
            }
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        for (int i = resources.size() - 1; i >= 0; i--) {
            resources.get(i).close();
        }
    }

    /** Threads of {@code factory} that note their kernel thread id (from /proc/thread-self) before they run. */
    private ThreadFactory recordingTids(ThreadFactory factory) {
        return r -> factory.newThread(() -> {
            try {
                String task = Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString();
                tids.put(Thread.currentThread().getName(), Long.parseLong(task));
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            r.run();
        });
    }

    /** The read(2)-family system calls the forwarder's ingress thread made so far (syscr, /proc task io). */
    private long ingressThreadReads() throws Exception {
        long tid = tids.entrySet().stream().filter(e -> e.getKey().endsWith("-ingress-" + tun.name()))
                .mapToLong(Map.Entry::getValue).findFirst().orElseThrow(() -> new AssertionError("no ingress thread: "
                        + tids.keySet()));
        return Files.readAllLines(Path.of("/proc/self/task/" + tid + "/io")).stream()
                .filter(l -> l.startsWith("syscr:")).mapToLong(l -> Long.parseLong(l.substring(6).trim()))
                .findFirst().orElseThrow();
    }

    private <T extends AutoCloseable> T track(T resource) {
        resources.add(resource);
        return resource;
    }

    /** The forwarder's threads: those of the namespace's thread factory that run its loop. */
    private List<Thread> forwarderThreads() {
        return Thread.getAllStackTraces().entrySet().stream()
                .filter(e -> e.getKey().getName().startsWith(ns.name() + "-"))
                .filter(e -> Arrays.stream(e.getValue()).anyMatch(f -> f.getMethodName().equals("runTurns")))
                .map(java.util.Map.Entry::getKey).toList();
    }

    /** Whether the egress thread sits in LockSupport.park (not in a poll on the TUN). */
    private boolean egressParked() {
        return forwarderThreads().stream().anyMatch(t -> t.getState() == Thread.State.WAITING
                && Arrays.stream(t.getStackTrace()).anyMatch(f -> f.getMethodName().equals("parkEgress")));
    }

    private void awaitEgressParked() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!egressParked()) {
            assertTrue(System.nanoTime() < deadline, "the egress thread never parked on a quiet TUN: "
                    + forwarderThreads().stream().map(t -> t.getState() + " " + Arrays.toString(t.getStackTrace()))
                    .toList());
            Thread.sleep(5);
        }
    }

    /** A UDP datagram from the namespace to 100.96.2.3 leaves through the TUN and reaches the peer, encapsulated. */
    private void egressOnce(byte marker) throws Exception {
        peer.configureBlocking(false);
        ByteBuffer stale = ByteBuffer.allocate(2048);
        while (peer.receive(stale.clear()) != null) {
            // a full receive queue (the burst's) would drop the packet this sends
        }
        ns.call(() -> app.send(ByteBuffer.wrap(new byte[] {marker, 1, 2}), new InetSocketAddress("100.96.2.3", 9)));
        ByteBuffer got = ByteBuffer.allocate(2048);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        peer.configureBlocking(false);
        while (true) {
            if (peer.receive(got.clear()) == null) {
                assertTrue(System.nanoTime() < deadline, () -> "the peer got nothing for marker " + marker + "; "
                        + forwarder.stats() + "; " + forwarderThreads().stream()
                        .map(t -> t.getState() + " " + Arrays.toString(t.getStackTrace())).toList());
                Thread.sleep(1);
                continue;
            }
            got.flip();
            if (got.getInt(16) == addr(100, 96, 2, 3)) {
                break; // else one of the burst's, to 100.96.2.4
            }
        }
        assertEquals(20 + 8 + 3, got.remaining(), "the inner IPv4/UDP packet");
        assertEquals(marker, got.get(28));
    }

    /** An encapsulated UDP datagram from the peer reaches the app socket on 100.96.1.0:7000 through the TUN. */
    private void ingressOnce(byte marker) throws Exception {
        byte[] inner = Packets.udp(addr(100, 96, 2, 3), 5000, addr(100, 96, 1, 0), 7000, new byte[] {marker, 9});
        peer.send(ByteBuffer.wrap(inner), socket.localAddress());
        ByteBuffer got = ByteBuffer.allocate(64);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        app.configureBlocking(false);
        while (app.receive(got.clear()) == null) {
            assertTrue(System.nanoTime() < deadline, "the app got nothing for marker " + marker);
            Thread.sleep(1);
        }
        got.flip();
        byte[] payload = new byte[got.remaining()];
        got.get(payload);
        assertArrayEquals(new byte[] {marker, 9}, payload);
    }

    @Test
    void trafficFlowsBothWaysWhileTheEgressThreadIsParkedAndAroundABurst() throws Exception {
        awaitEgressParked();
        for (byte i = 1; i <= 5; i++) {
            egressOnce(i); // served by the ingress thread alone
            ingressOnce(i);
            assertTrue(egressParked(), "a single packet must not wake the egress thread");
        }
        // A burst deeper than one turn of the ingress thread: the egress thread takes its direction back.
        ns.call(() -> {
            for (int i = 0; i < 2000; i++) {
                app.send(ByteBuffer.wrap(new byte[] {(byte) i, 1, 2}), new InetSocketAddress("100.96.2.4", 9));
            }
            return null;
        });
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (forwarder.stats().egressPackets() < 2005) {
            assertTrue(System.nanoTime() < deadline, "burst not forwarded: " + forwarder.stats());
            Thread.sleep(5);
        }
        // Quiet again: parked again, and both directions still work.
        awaitEgressParked();
        egressOnce((byte) 6);
        ingressOnce((byte) 6);
    }

    @Test
    void aQuietNodeReadsItsTunOncePerPacketWithoutAReadThatFindsItEmpty() throws Exception {
        restartWithoutTick(); // the tick's turns read the TUN too (next test)
        awaitEgressParked();
        egressOnce((byte) 1);
        int packets = 8;
        long before = ingressThreadReads();
        for (byte i = 2; i < 2 + packets; i++) {
            Thread.sleep(2); // a quiet node: its thread has gone back to waiting (the peer may get a packet first)
            egressOnce(i); // one packet each after a wait that blocked: read once, send, wait
        }
        long reads = ingressThreadReads() - before;
        assertTrue(egressParked(), "single packets must not wake the egress thread");
        // The draining loop reads until the TUN is empty: two reads a packet. One spare for a wait that happened not
        // to block (the thread was preempted between its send and its wait).
        assertTrue(reads >= packets && reads <= packets + 1, reads + " reads for " + packets + " packets");
        ingressOnce((byte) 10);
    }

    @Test
    void aQuietNodesThreadTakesATurnOfItsOwnEachTickAndNoMore() throws Exception {
        awaitEgressParked();
        long before = ingressThreadReads();
        long start = System.nanoTime();
        Thread.sleep(200);
        long reads = ingressThreadReads() - before;
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        // One empty TUN read per 4 ms tick: about 50 here; fewer if the machine is busy, never a spin.
        assertTrue(reads >= 5 && reads <= millis / 4 + 5, reads + " TUN reads in " + millis + " ms");
        egressOnce((byte) 1);
        ingressOnce((byte) 1);
    }

    @Test
    void aNodeWithoutTrafficStopsTickingFiveSecondsAfterItsLastPacketAndStartsAgainWithTheNext() throws Exception {
        awaitEgressParked();
        egressOnce((byte) 1);
        Thread.sleep(5300);
        long before = ingressThreadReads();
        Thread.sleep(200);
        assertEquals(0, ingressThreadReads() - before, "TUN reads while idle past the tick's window");
        egressOnce((byte) 2);
        before = ingressThreadReads();
        Thread.sleep(200);
        long reads = ingressThreadReads() - before;
        assertTrue(reads >= 5, reads + " TUN reads in 200 ms after a packet");
        assertTrue(egressParked(), "a single packet must not wake the egress thread");
    }

    @Test
    void aForwarderOwningNeitherDeviceStopsPromptlyWhetherParkedOrWaiting() throws Exception {
        awaitEgressParked();
        long start = System.nanoTime();
        forwarder.close();
        assertTrue(forwarder.awaitTermination(1, TimeUnit.SECONDS), "threads still alive after close");
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(millis < 1000, "close took " + millis + " ms");
        assertTrue(tun.isOpen() && socket.isOpen(), "both belong to their owner");
    }

    @Test
    void closingTheBorrowedTunEndsBothThreadsWhileTheEgressThreadIsParked() throws Exception {
        awaitEgressParked();
        tun.close();
        assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS), "threads still alive after the TUN closed");
    }
}
