package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Backend;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.TrafficStats;
import io.overlay4j.bench.ProcessResources;
import io.overlay4j.bench.fuzz.DatagramCapture;
import io.overlay4j.bench.fuzz.DatagramFuzzer;
import io.overlay4j.bench.fuzz.Encapsulation;
import io.overlay4j.bench.fuzz.FuzzCase;
import io.overlay4j.bench.fuzz.FuzzResult;
import io.overlay4j.bench.fuzz.HostileDatagrams;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.UdpBackend;
import io.overlay4j.vxlan.VxlanBackend;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The datagram fuzzer against a real node in the walk-through's namespaces while its containers talk: host2's node is
 * attacked from host1, which holds a second lease ({@code 100.96.3.0/24} at {@code 10.168.0.9}, an address on its
 * underlay interface) to send "legitimate" datagrams from, and a stranger's address ({@code 10.168.0.66}) that holds
 * none. Meanwhile c1 pings c2 and pushes checked TCP streams to it through the same two nodes. Capture sockets on the
 * fuzzer's inner destination port in c1, c2, host1 and host2 count what gets through.
 *
 * <p>Then: every datagram is counted by host2's node exactly under the reason its case names (sent per case = drops
 * per reason, paced so host2's socket never overflows, which {@code /proc/net/snmp} confirms); nothing that must be
 * dropped reached any socket; no ping was lost and every stream arrived intact; the data plane works after; the JVM's
 * RSS, heap, threads and file descriptors are flat. Over flannel udp (the {@code udp} backend) and VXLAN (host2's
 * node on the userspace data plane of the {@code vxlan} backend, host1's on the kernel's), offloads on and off.
 */
@Timeout(600)
class HostileDatagramsTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";
    private static final Inet4Address FUZZ_LEASED = Ipv4Prefix.parseAddress("10.168.0.9");
    private static final Inet4Address FUZZ_STRANGER = Ipv4Prefix.parseAddress("10.168.0.66");
    private static final Ipv4Prefix FUZZ_SUBNET = Ipv4Prefix.parse("100.96.3.0/24");
    private static final int CAPTURE_PORT = 9999;
    /** Enough for the JIT to have compiled the fuzzer's and the node's paths before the JVM is measured. */
    private static final int WARM_UP = 200_000;
    /** Datagrams per run (warm-up included); measured: see the class's output and the README's reliability section. */
    private static final int UDP_OFFLOADS = 1_000_000;
    private static final int UDP_PLAIN = 1_000_000;
    private static final int VXLAN = 1_000_000;
    private static final String HOST2_MAC = "02:11:22:33:44:02";
    private static final String FUZZ_MAC = "02:11:22:33:44:09";
    private static final Pattern PING = Pattern.compile("(\\d+) packets transmitted, (\\d+) received");

    @TempDir
    Path dir;

    private final List<AutoCloseable> closeables = new ArrayList<>();
    private WalkthroughTopology topology;

    @BeforeEach
    void setUp() {
        Requirements.requireKernelNetworking();
        Requirements.requireBinary("ping");
    }

    @AfterEach
    void tearDown() throws Exception {
        List<AutoCloseable> all = new ArrayList<>(closeables);
        Collections.reverse(all);
        all.add(topology); // last, whatever failed before it
        Walkthroughs.closeAll(all);
    }

    private <T extends AutoCloseable> T closeLater(T c) {
        closeables.add(c);
        return c;
    }

    private WalkthroughTopology topology(int containerMtu) throws IOException {
        String prefix = "o4jf" + Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000)) + "-";
        topology = WalkthroughTopology.create(prefix, containerMtu);
        return topology;
    }

    /**
     * The fuzzer's two extra addresses on host1's underlay interface: one leased, one not. Added once host1's node has
     * bound its socket: a node started on an interface with several addresses takes the one Java lists first, the
     * newest secondary, not the primary that flanneld would take.
     */
    private static void addFuzzerAddresses(WalkthroughTopology t) throws IOException {
        WalkthroughTopology.inside(t.host1(), nl -> {
            nl.addAddress(WalkthroughTopology.UNDERLAY, FUZZ_LEASED, 24);
            nl.addAddress(WalkthroughTopology.UNDERLAY, FUZZ_STRANGER, 24);
        });
    }

    @ParameterizedTest(name = "offloads {0}")
    @ValueSource(booleans = {true, false})
    void flannelUdpNodeCountsEveryHostileDatagramAndDeliversNone(boolean offloads) throws Exception {
        WalkthroughTopology t = topology(1472);
        LocalSubnetAllocator allocator = closeLater(LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(NetworkConfig.parse(CONFIG)).build());
        OverlayNode node1 = closeLater(node(allocator, t.host1(), WalkthroughTopology.SUBNET1, offloads));
        OverlayNode node2 = closeLater(node(allocator, t.host2(), WalkthroughTopology.SUBNET2, offloads));
        assertEquals(WalkthroughTopology.HOST1_IP, node1.publicAddress());
        assertEquals(WalkthroughTopology.HOST2_IP, node2.publicAddress());
        addFuzzerAddresses(t);
        Lease fuzzLease = allocator.acquire(LeaseAttributes.udp(FUZZ_LEASED), FUZZ_SUBNET);
        assertEquals(FUZZ_SUBNET, fuzzLease.subnet());
        await(() -> node1.peers().size() == 2 && node2.peers().size() == 2, "both nodes to know 2 peers", 20);

        HostileDatagrams.Target target = target(Encapsulation.FLANNEL_UDP, 1472, null);
        attack(t, target, offloads ? UDP_OFFLOADS : UDP_PLAIN, node2::stats, "udp, offloads " + offloads);
    }

    @ParameterizedTest(name = "offloads {0}")
    @ValueSource(booleans = {true, false})
    void userspaceVxlanNodeCountsEveryHostileDatagramAndDeliversNone(boolean offloads) throws Exception {
        Requirements.requireBinary("ethtool");
        WalkthroughTopology t = topology(1450);
        // host1's kernel VXLAN leaves inner checksums partial for a NIC to finish; over a veth nobody would.
        run("ip", "netns", "exec", t.host1().name(), "ethtool", "-K", WalkthroughTopology.UNDERLAY, "tx", "off");
        LocalSubnetAllocator allocator = closeLater(LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(NetworkConfig.parse(CONFIG.replace("udp", "vxlan"))).build());
        OverlayNode node1 = closeLater(node(allocator, t.host1(), WalkthroughTopology.SUBNET1,
                VxlanBackend.builder().cleanUpOnClose(true).build()));
        VxlanBackend userspace = VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.USERSPACE)
                .vtepMac(HOST2_MAC).offloads(offloads).build();
        OverlayNode node2 = closeLater(node(allocator, t.host2(), WalkthroughTopology.SUBNET2, userspace));
        assertEquals(VxlanBackend.DataPlane.USERSPACE, userspace.activeDataPlane().orElseThrow());
        addFuzzerAddresses(t);
        Lease fuzzLease = allocator.acquire(new LeaseAttributes(FUZZ_LEASED, null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"" + FUZZ_MAC + "\"}"), FUZZ_SUBNET);
        assertEquals(FUZZ_SUBNET, fuzzLease.subnet());
        await(() -> node1.peers().size() == 2 && userspace.stats().peers() == 2, "host2's node to know 2 peers", 20);

        HostileDatagrams.Target target = target(Encapsulation.VXLAN, 1450, HOST2_MAC);
        attack(t, target, VXLAN, node2::stats, "userspace vxlan (kernel vxlan peer), offloads " + offloads);
    }

    private static HostileDatagrams.Target target(Encapsulation encapsulation, int mtu, String receiverMac) {
        HostileDatagrams.Target.Builder b = HostileDatagrams.Target.builder().encapsulation(encapsulation)
                .network(WalkthroughTopology.NETWORK).receiverSubnet(WalkthroughTopology.SUBNET2)
                .receiverAddress(WalkthroughTopology.HOST2_IP).mtu(mtu).senderAddress(FUZZ_LEASED)
                .senderSubnet(FUZZ_SUBNET).otherSubnet(WalkthroughTopology.SUBNET1)
                .otherHost(WalkthroughTopology.HOST1_IP).victim(WalkthroughTopology.C2_IP).capturePort(CAPTURE_PORT);
        if (receiverMac != null) {
            b.receiverMac(receiverMac).senderMac(FUZZ_MAC);
        }
        return b.build();
    }

    /**
     * Warms up, measures the JVM, sends {@code datagrams} in all (warm-up included) from host1 at host2 with the
     * containers talking, and checks everything the class comment promises.
     */
    private void attack(WalkthroughTopology t, HostileDatagrams.Target target, int datagrams,
                        Supplier<TrafficStats> receiver, String label) throws Exception {
        DatagramCapture capture = closeLater(DatagramCapture.open(CAPTURE_PORT,
                List.of(t.c1(), t.c2(), t.host1(), t.host2())));
        Ping.Result first = Ping.run(t.c1(), WalkthroughTopology.C2_IP, 3);
        assertEquals(3, first.received(), first.output());
        TrafficStats before = receiver.get();
        long rcvbufBefore = udpRcvbufErrors(t.host2());
        long captureOverflowsBefore = udpRcvbufErrors(t.c2());
        DatagramFuzzer fuzzer = closeLater(t.host1().call(() -> DatagramFuzzer.builder().target(target)
                .seed(0x0f4a2b1L + datagrams).strangerAddress(FUZZ_STRANGER)
                .pace(() -> receiver.get().totalDrops(), 1024).build()));

        // Warm-up: JIT, buffers, the legit traffic's classes. Then the JVM's figures, with nothing running but nodes.
        fuzzer.run(WARM_UP, null);
        try (LegitTraffic warm = new LegitTraffic(t)) {
            warm.awaitOneRound();
        }
        ProcessResources start = ProcessResources.afterGc();

        LegitTraffic legit = new LegitTraffic(t);
        FuzzResult sent;
        try (legit) {
            sent = fuzzer.run(datagrams, Duration.ofMinutes(5));
            awaitAccounted(receiver, before, sent, 120);
            legit.awaitOneRound();
        }
        TrafficStats after = receiver.get();
        ProcessResources end = ProcessResources.afterGc();
        long rcvbufErrors = udpRcvbufErrors(t.host2()) - rcvbufBefore;
        long captureOverflows = udpRcvbufErrors(t.c2()) - captureOverflowsBefore;

        System.out.printf("fuzz %s: %s%n  %s%n  node: %s%n  %s%n  legit traffic meanwhile: %s%n  JVM: %s -> %s%n"
                        + "  host2 UDP RcvbufErrors during the run: %d%n", label, sent, sent.table().replace("\n",
                        "\n  "), delta(after, before), capture.summary().replace("\n", "\n  "), legit, start, end,
                rcvbufErrors);
        assertEquals(datagrams, sent.datagrams(), sent.table());
        assertEquals(0, sent.sendErrors(), sent.table());
        for (FuzzCase c : FuzzCase.values()) {
            if (c.appliesTo(target.encapsulation())) {
                assertTrue(sent.sent(c) > 0, c + " never sent");
            }
        }
        // Every drop counted under its reason: exact, since the pacing kept host2's socket from overflowing.
        assertEquals(0, rcvbufErrors, "host2's socket overflowed: the counts below cannot be exact");
        for (Map.Entry<DropReason, Long> e : sent.expectedDrops().entrySet()) {
            DropReason r = e.getKey();
            if (r == DropReason.NO_ROUTE || r == DropReason.SEND_FAILED) {
                continue; // egress reasons: the fuzzer sends nothing there, the containers' replies may
            }
            assertEquals((long) e.getValue(), after.drops(r) - before.drops(r), r + " at host2's node: "
                    + delta(after, before) + "\n" + sent.table());
        }
        assertTrue(after.ingressPackets() - before.ingressPackets() >= sent.expectedAdmitted(),
                "admitted datagrams missing: " + delta(after, before) + ", expected at least "
                        + sent.expectedAdmitted());
        // Nothing that had to be dropped reached a socket anywhere; the valid ones reached c2.
        assertEquals(0, capture.hostile(), capture.summary());
        assertEquals(0, capture.unmarked(), capture.summary());
        long valid = capture.received(t.c2().name(), FuzzCase.VALID)
                + capture.received(t.c2().name(), FuzzCase.TRAILING_BYTES);
        // Every valid one arrived, unless c2's capture socket overflowed (a stalled reader on a busy machine).
        assertTrue(valid <= sent.expectedDelivered() && valid + captureOverflows >= sent.expectedDelivered(),
                "valid datagrams at c2: " + valid + " of " + sent.expectedDelivered() + " (capture socket overflows "
                        + captureOverflows + ")\n" + capture.summary());
        // The containers' traffic went on untouched.
        assertTrue(legit.intact(), "the TCP stream: " + legit);
        assertTrue(legit.pingSent.get() > 0 && legit.tcpReceived.get() > 0, legit.toString());
        assertEquals(legit.pingSent.get(), legit.pingReceived.get(), () -> "pings lost: " + legit + "\n"
                + kernelCounters(t));
        // And works after.
        Ping.Result ping = Ping.run(t.c1(), WalkthroughTopology.C2_IP, 3);
        assertEquals(3, ping.received(), ping.output());
        TcpStream.Result tcp = TcpStream.run(t.c2(), t.c1(), WalkthroughTopology.C1_IP, 5299, 8 << 20,
                Duration.ofSeconds(60));
        assertTrue(tcp.intact() && tcp.bytesReceived() == 8 << 20, "stream after the attack: " + tcp);
        // Flat: no thread, descriptor or memory left behind per datagram.
        assertFlat(start, end);
    }

    private OverlayNode node(LocalSubnetAllocator allocator, NetworkNamespace host, Ipv4Prefix subnet,
                             boolean offloads) {
        return node(allocator, host, subnet, UdpBackend.builder().offloads(offloads).build());
    }

    private OverlayNode node(LocalSubnetAllocator allocator, NetworkNamespace host, Ipv4Prefix subnet,
                             Backend backend) {
        return OverlayNode.builder().allocator(allocator).backend(backend)
                .underlayInterface(WalkthroughTopology.UNDERLAY).threadFactory(host.threadFactory())
                .preferredSubnet(subnet).build().start();
    }

    /** Waits until the receiver has counted, for every reason, at least the drops sent. */
    private static void awaitAccounted(Supplier<TrafficStats> receiver, TrafficStats before, FuzzResult sent,
                                       int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (true) {
            TrafficStats s = receiver.get();
            boolean done = s.ingressPackets() - before.ingressPackets() >= sent.expectedAdmitted();
            for (Map.Entry<DropReason, Long> e : sent.expectedDrops().entrySet()) {
                done &= s.drops(e.getKey()) - before.drops(e.getKey()) >= e.getValue();
            }
            if (done) {
                Thread.sleep(200); // anything counted twice would show now
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not every datagram accounted for after " + seconds + " s: "
                        + delta(s, before) + "\n" + sent.table());
            }
            Thread.sleep(20);
        }
    }

    private static String delta(TrafficStats after, TrafficStats before) {
        StringBuilder sb = new StringBuilder();
        sb.append("ingress +").append(after.ingressPackets() - before.ingressPackets()).append(" pkts, egress +")
                .append(after.egressPackets() - before.egressPackets()).append(" pkts, drops +")
                .append(after.totalDrops() - before.totalDrops()).append(" {");
        String sep = "";
        for (DropReason r : DropReason.values()) {
            long d = after.drops(r) - before.drops(r);
            if (d != 0) {
                sb.append(sep).append(r).append('=').append(d);
                sep = ", ";
            }
        }
        return sb.append('}').toString();
    }

    /** UDP receive-buffer overflows in a namespace ({@code RcvbufErrors} of {@code /proc/net/snmp}). */
    private static long udpRcvbufErrors(NetworkNamespace ns) throws Exception {
        List<String> lines = ns.call(() -> Files.readAllLines(Path.of("/proc/thread-self/net/snmp")));
        String[] names = null;
        for (String line : lines) {
            if (!line.startsWith("Udp: ")) {
                continue;
            }
            String[] fields = line.substring(5).trim().split("\\s+");
            if (names == null) {
                names = fields;
                continue;
            }
            for (int i = 0; i < names.length; i++) {
                if (names[i].equals("RcvbufErrors")) {
                    return Long.parseLong(fields[i]);
                }
            }
        }
        throw new IOException("no Udp RcvbufErrors in /proc/net/snmp: " + lines);
    }

    /** Where the kernels of the four namespaces dropped packets: interface drops and nstat's counters. */
    private static String kernelCounters(WalkthroughTopology t) {
        StringBuilder sb = new StringBuilder();
        for (NetworkNamespace ns : List.of(t.host1(), t.host2(), t.c1(), t.c2())) {
            try {
                sb.append(ns.name()).append(":\n").append(TestNamespaces.exec(List.of("ip", "-n", ns.name(), "-s",
                        "link"))).append(TestNamespaces.exec(List.of("ip", "netns", "exec", ns.name(), "nstat",
                        "-as")));
            } catch (IOException e) {
                sb.append(e).append('\n');
            }
        }
        return sb.toString();
    }

    private static void run(String... command) throws IOException {
        TestNamespaces.exec(List.of(command));
    }

    private static void await(java.util.function.BooleanSupplier condition, String what, int seconds)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    /**
     * The containers' own traffic while the node is attacked: c1 pings c2 (20 per second; a late reply counts, as long
     * as each round of 40 is complete within 30 s: ping's {@code -W} would call a reply later than twice the round
     * trip lost), and one TCP connection c1 → c2 carries a stream at 8 MB/s whose every byte the receiver checks.
     * Buffers are allocated once, so the traffic itself does not move the JVM's memory.
     */
    static final class LegitTraffic implements AutoCloseable {
        private static final int PORT = 5300;
        private static final int CHUNK = 64 << 10;
        private static final long BYTES_PER_SECOND = 8L << 20;
        final AtomicLong pingSent = new AtomicLong();
        final AtomicLong pingReceived = new AtomicLong();
        final AtomicLong tcpSent = new AtomicLong();
        final AtomicLong tcpReceived = new AtomicLong();
        final AtomicLong tcpMismatches = new AtomicLong();
        final List<Throwable> failures = new CopyOnWriteArrayList<>();
        private final WalkthroughTopology topology;
        private final ServerSocketChannel listener;
        private final Thread pinger;
        private final Thread sender;
        private final Thread receiver;
        private volatile boolean running = true;

        LegitTraffic(WalkthroughTopology topology) throws Exception {
            this.topology = topology;
            this.listener = topology.c2().call(() -> ServerSocketChannel.open()
                    .bind(new InetSocketAddress(WalkthroughTopology.C2_IP, PORT)));
            this.pinger = new Thread(this::ping, "legit-ping");
            this.sender = new Thread(this::send, "legit-tcp-send");
            this.receiver = new Thread(this::receive, "legit-tcp-receive");
            receiver.start();
            sender.start();
            pinger.start();
        }

        private void ping() {
            while (running) {
                try {
                    Process p = new ProcessBuilder("ip", "netns", "exec", topology.c1().name(), "ping", "-n", "-q",
                            "-c", "40", "-i", "0.05", "-w", "30", WalkthroughTopology.C2_IP.getHostAddress())
                            .redirectErrorStream(true).start();
                    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                    p.waitFor();
                    Matcher m = PING.matcher(out);
                    if (!m.find()) {
                        throw new IOException("ping printed no summary: " + out);
                    }
                    pingSent.addAndGet(Long.parseLong(m.group(1)));
                    pingReceived.addAndGet(Long.parseLong(m.group(2)));
                } catch (Exception e) {
                    failures.add(e);
                    return;
                }
            }
        }

        private void send() {
            ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
            InetSocketAddress to = new InetSocketAddress(WalkthroughTopology.C2_IP, PORT);
            try (SocketChannel ch = topology.c1().call(() -> SocketChannel.open(to))) {
                long start = System.nanoTime();
                long at = 0;
                while (running) {
                    buf.clear();
                    for (int i = 0; i < CHUNK; i++) {
                        buf.put(i, pattern(at + i));
                    }
                    while (buf.hasRemaining()) {
                        ch.write(buf);
                    }
                    at += CHUNK;
                    tcpSent.set(at);
                    long due = start + at * 1_000_000_000L / BYTES_PER_SECOND;
                    long wait = due - System.nanoTime();
                    if (wait > 0) {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    }
                }
                ch.shutdownOutput();
            } catch (Exception e) {
                failures.add(e);
            }
        }

        private void receive() {
            ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
            try (SocketChannel ch = listener.accept()) {
                long at = 0;
                while (true) {
                    buf.clear();
                    int n = ch.read(buf);
                    if (n < 0) {
                        return;
                    }
                    for (int i = 0; i < n; i++) {
                        if (buf.get(i) != pattern(at + i)) {
                            tcpMismatches.incrementAndGet();
                        }
                    }
                    at += n;
                    tcpReceived.set(at);
                }
            } catch (IOException e) {
                failures.add(e);
            }
        }

        private static byte pattern(long i) {
            return (byte) (i ^ i >>> 8 ^ i >>> 16 ^ 0x5a);
        }

        /** Waits until a round of pings has completed and another MiB has arrived intact, from now. */
        void awaitOneRound() throws InterruptedException {
            long pings = pingSent.get();
            long bytes = tcpReceived.get();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while ((pingSent.get() == pings || tcpReceived.get() < bytes + (1 << 20)) && failures.isEmpty()) {
                assertTrue(System.nanoTime() < deadline, "legit traffic made no progress in 60 s: " + this);
                Thread.sleep(20);
            }
        }

        /** Whether every byte sent arrived, unchanged, once the stream ended. */
        boolean intact() {
            return failures.isEmpty() && tcpMismatches.get() == 0 && tcpReceived.get() == tcpSent.get();
        }

        @Override
        public void close() throws Exception {
            running = false;
            sender.join(30_000);
            receiver.join(30_000);
            pinger.join(35_000);
            listener.close();
            assertTrue(!pinger.isAlive() && !sender.isAlive() && !receiver.isAlive(), "legit traffic did not stop");
        }

        @Override
        public String toString() {
            return String.format("ping %d/%d, TCP stream %.1f MiB sent, %.1f MiB received, %d bytes wrong%s",
                    pingReceived.get(), pingSent.get(), tcpSent.get() / 1048576.0, tcpReceived.get() / 1048576.0,
                    tcpMismatches.get(), failures.isEmpty() ? "" : ", failures " + failures);
        }
    }

    /**
     * Threads and descriptors back where they were (±2), the native rest within 32 MiB, the live heap within 16 MiB:
     * the heap's size follows the GC's sizing and the code cache the JIT's, neither a leak.
     */
    private static void assertFlat(ProcessResources start, ProcessResources end) {
        String both = start + " -> " + end;
        assertTrue(Math.abs(end.threads() - start.threads()) <= 2, "threads not flat: " + both);
        assertTrue(Math.abs(end.fds() - start.fds()) <= 2, "file descriptors not flat: " + both);
        assertTrue(end.nativeRestKb() - start.nativeRestKb() < 32 << 10, "native memory grew: " + both);
        assertTrue(end.heapUsed() - start.heapUsed() < 16 << 20, "live heap grew: " + both);
    }
}
