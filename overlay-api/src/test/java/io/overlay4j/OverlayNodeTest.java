package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.OverlayNode.State;
import java.io.IOException;
import java.net.BindException;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control plane against the real file allocator and a recording backend (no kernel): lease, subnet.env, peers,
 * renewal, loss and restart, state and events, start modes, errors, threads.
 */
@Timeout(60)
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

    private OverlayNode.Builder builder(SubnetAllocator allocator, Backend backend, String ip) {
        return OverlayNode.builder().allocator(allocator).backend(backend).underlayInterface("lo")
                .publicAddress(Ipv4Prefix.parseAddress(ip));
    }

    private OverlayNode node(SubnetAllocator allocator, RecordingBackend backend, String ip, String envName) {
        OverlayNode n = builder(allocator, backend, ip).subnetFile(envName == null ? null : dir.resolve(envName))
                .build().start();
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
        OverlayNode node = node(allocator(Duration.ofHours(24)), backend, "192.0.2.2", "a.env");
        assertEquals(State.READY, node.state());
        Ipv4Prefix subnet = node.lease().subnet();
        assertEquals(24, subnet.length());
        assertTrue(CONFIG.network().contains(subnet));
        assertEquals(Ipv4Prefix.parseAddress("192.0.2.2"), node.lease().attributes().publicIp());
        assertEquals(65536 - 28, node.mtu());
        assertEquals("lo", node.interfaceName());
        assertEquals("FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=" + subnet.addressAt(1).getHostAddress()
                        + "/24\nFLANNEL_MTU=65508\nFLANNEL_IPMASQ=false\n",
                Files.readString(dir.resolve("a.env")));
        node.close();
        assertTrue(backend.closed, "backend network not closed");
        assertEquals(State.CLOSED, node.state());
    }

    @Test
    void eventsArriveInOrderOnTheControlThread() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofSeconds(2));
        Recorder rec = new Recorder();
        OverlayNode n1 = builder(alloc, new RecordingBackend(), "192.0.2.2").listener(rec).build().start();
        closeables.add(n1);
        Lease first = n1.lease();
        assertEquals(List.of("subnetChanged null->" + first.subnet(), "state STARTING->READY"), rec.lines(2));

        OverlayNode n2 = builder(alloc, new RecordingBackend(), "192.0.2.3").releaseOnClose(true).build().start();
        Ipv4Prefix other = n2.lease().subnet();
        rec.await("peerAdded " + other);
        n2.close();
        rec.await("peerRemoved " + other);
        rec.await("leaseRenewed " + first.subnet()); // a 2 s lease renews at half-life
        assertTrue(n1.lease().expiration().isAfter(first.expiration()));
        assertEquals(1, rec.threads.size(), "one control thread: " + rec.threads);
        assertTrue(rec.threads.iterator().next().startsWith("overlay4j-node-"), rec.threads.toString());

        n1.close();
        rec.await("state READY->CLOSED");
        assertEquals(0, n1.listenerErrors());
    }

    @Test
    void aListenerThatThrowsDoesNotStopTheNode() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        AtomicInteger calls = new AtomicInteger();
        OverlayNode.Listener bad = new OverlayNode.Listener() {
            @Override
            public void peerAdded(Lease peer) {
                calls.incrementAndGet();
                throw new IllegalStateException("listener bug (expected by the test)");
            }

            @Override
            public void stateChanged(State previous, State current, OverlayException cause) {
                throw new IllegalStateException("listener bug (expected by the test)");
            }
        };
        Recorder good = new Recorder();
        OverlayNode n1 = builder(alloc, new RecordingBackend(), "192.0.2.2").listener(bad).listener(good).build()
                .start();
        closeables.add(n1);
        node(alloc, new RecordingBackend(), "192.0.2.3", null);
        node(alloc, new RecordingBackend(), "192.0.2.4", null);
        await(() -> calls.get() == 2, "both peers reported to the failing listener");
        assertEquals(2, n1.peers().size());
        assertEquals(State.READY, n1.state());
        assertEquals(3, n1.listenerErrors(), "READY and two peers");
        assertEquals(2, good.lines.stream().filter(l -> l.startsWith("peerAdded")).count());
        try (OverlayNode.Registration r = n1.addListener(good)) {
            assertTrue(r != null);
        }
    }

    @Test
    void peersAreFollowedAndOwnLeaseIsNotAPeer() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        RecordingBackend b1 = new RecordingBackend();
        OverlayNode n1 = node(alloc, b1, "192.0.2.2", "a.env");
        RecordingBackend b2 = new RecordingBackend();
        OverlayNode n2 = builder(alloc, b2, "192.0.2.3").releaseOnClose(true).build().start();
        await(() -> b1.peers.containsKey(n2.lease().subnet()), "node1 to learn node2");
        await(() -> b2.peers.containsKey(n1.lease().subnet()), "node2 to learn node1");
        assertEquals(List.of(n2.lease()), n1.peers());
        assertFalse(b1.peers.containsKey(n1.lease().subnet()));
        Ipv4Prefix gone = n2.lease().subnet();
        n2.close();
        await(() -> !b1.peers.containsKey(gone), "node1 to drop node2 after it released its lease");
        assertTrue(n1.peers().isEmpty());
    }

    @Test
    void restartPrefersThePreviousSubnetFromTheSubnetFile() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        OverlayNode first = builder(alloc, new RecordingBackend(), "192.0.2.2").subnetFile(dir.resolve("a.env"))
                .releaseOnClose(true).build().start();
        Ipv4Prefix subnet = first.lease().subnet();
        first.close();
        // Another public address, so reuse-by-address cannot explain it: only the subnet file can.
        OverlayNode again = node(alloc, new RecordingBackend(), "192.0.2.9", "a.env");
        assertEquals(subnet, again.lease().subnet());
    }

    @Test
    void noSubnetFileByDefault() throws Exception {
        OverlayNode node = node(allocator(Duration.ofHours(1)), new RecordingBackend(), "192.0.2.2", null);
        try (var files = Files.list(dir)) {
            assertEquals(List.of("leases.json", "leases.json.lock"),
                    files.map(p -> p.getFileName().toString()).sorted().toList(), "nothing else written");
        }
        assertEquals(State.READY, node.state());
    }

    @Test
    void aLostLeaseIsRecreatedWithTheSameSubnet() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        Recorder rec = new Recorder();
        OverlayNode node = builder(alloc, new RecordingBackend(), "192.0.2.2").listener(rec).build().start();
        closeables.add(node);
        Lease lease = node.lease();
        alloc.release(lease);
        await(() -> alloc.leases().stream().anyMatch(l -> l.subnet().equals(lease.subnet())),
                "the node to re-create its subnet");
        rec.await("leaseRenewed " + lease.subnet());
        assertEquals(lease.subnet(), node.lease().subnet());
        assertTrue(rec.lines.stream().noneMatch(l -> l.contains("LEASE_LOST")), rec.lines.toString());
    }

    @Test
    void aCorruptValueInItsOwnEntryDoesNotMoveTheNode() throws Exception {
        // Renewals every second (half of a 2 s lease); the watch may notice the corruption even sooner.
        LocalSubnetAllocator alloc = allocator(Duration.ofSeconds(2));
        Recorder rec = new Recorder();
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = builder(alloc, backend, "192.0.2.2").subnetFile(dir.resolve("a.env")).listener(rec)
                .build().start();
        closeables.add(node);
        Ipv4Prefix subnet = node.lease().subnet();
        String env = Files.readString(dir.resolve("a.env"));
        String key = "\"" + subnet.toSubnetKey() + "\":{\"value\":";
        String ours = key + LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.0.2.2")).toJson();
        for (String corrupt : List.of("\"garbage\"", "{}", "{\"PublicIP\":\"127.0.0.1\"}")) {
            String text = Files.readString(alloc.file());
            int at = text.indexOf(key);
            assertTrue(at >= 0, text);
            int end = text.indexOf(",\"expires\"", at);
            writeAtomically(alloc.file(), text.substring(0, at + key.length()) + corrupt + text.substring(end));
            await(() -> {
                try {
                    return Files.readString(alloc.file()).contains(ours);
                } catch (IOException e) {
                    return false;
                }
            }, "the node to rewrite its entry after " + corrupt);
        }
        rec.await("leaseRenewed " + subnet);
        assertEquals(subnet, node.lease().subnet());
        assertEquals(1, backend.registrations.get(), "never rebuilt");
        assertEquals(env, Files.readString(dir.resolve("a.env")));
        assertEquals(State.READY, node.state());
        assertTrue(rec.all.stream().noneMatch(l -> l.contains("LEASE_LOST") || l.startsWith("subnetChanged "
                + subnet)), rec.all.toString());
    }

    private static void writeAtomically(Path file, String text) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".test-tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    @Test
    void subnetTakenByAnotherNodeMovesTheNodeAndSaysSo() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        Recorder rec = new Recorder();
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = builder(alloc, backend, "192.0.2.2").subnetFile(dir.resolve("a.env")).listener(rec)
                .build().start();
        closeables.add(node);
        Lease old = node.lease();
        takeOver(alloc, old.subnet(), "192.0.2.77");
        rec.await("state READY->LEASE_LOST");
        rec.await("subnetChanged " + old.subnet() + "->");
        rec.await("state LEASE_LOST->READY");
        Ipv4Prefix now = node.lease().subnet();
        assertNotEquals(old.subnet(), now);
        assertEquals(2, backend.registrations.get(), "rebuilt around the new subnet");
        assertTrue(Files.readString(dir.resolve("a.env")).contains("FLANNEL_SUBNET=" + now.addressAt(1)
                .getHostAddress() + "/24"), "subnet file rewritten");
        await(() -> node.peers().stream().anyMatch(l -> l.subnet().equals(old.subnet())),
                "the node that took the subnet to be a peer");
    }

    /**
     * The stats snapshot is there before the start, while running, across a move to a new subnet (the counters keep
     * counting up over both data planes) and after close (CLOSED, the last values), and never throws.
     */
    @Test
    void nodeStatsAreReadableAtAnyTimeAndCountAcrossAMove() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        Recorder rec = new Recorder();
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = builder(alloc, backend, "192.0.2.2").listener(rec).build();
        closeables.add(node);
        NodeStats before = node.nodeStats();
        assertEquals(new NodeStats(State.STARTING, null, false, TrafficStats.zero(), List.of(), List.of()), before);
        assertThrows(IllegalStateException.class, node::stats);
        assertEquals(List.of(), node.peerStats());

        node.start();
        OverlayNode other = node(alloc, new RecordingBackend(), "192.0.2.3", null);
        Ipv4Prefix peer = other.lease().subnet();
        rec.await("peerAdded " + peer);
        backend.sent.addAndGet(5);
        NodeStats running = node.nodeStats();
        assertEquals(State.READY, running.state());
        assertEquals(node.lease(), running.lease());
        assertEquals(node.lease().expiration(), running.leaseExpiration());
        assertTrue(running.storeReachable());
        assertEquals(5, running.traffic().egressPackets());
        assertEquals(500, node.stats().egressBytes());
        assertEquals(List.of(new PeerStats(peer, 5, 500, 0, 0, null)), running.peers());
        assertEquals(RecordingBackend.OFFLOADS, running.offloads());

        Lease old = node.lease();
        takeOver(alloc, old.subnet(), "192.0.2.77");
        rec.await("state LEASE_LOST->READY");
        await(() -> node.peers().size() == 2, "the taker to be a peer too");
        backend.sent.addAndGet(3);
        NodeStats moved = node.nodeStats();
        assertEquals(8, moved.traffic().egressPackets(), "counted over both data planes");
        assertEquals(new PeerStats(peer, 8, 800, 0, 0, null), peerOf(moved, peer), "the same peer before and after");
        assertEquals(new PeerStats(old.subnet(), 3, 300, 0, 0, null), peerOf(moved, old.subnet()), "a new peer");

        node.close();
        NodeStats closed = node.nodeStats();
        assertEquals(State.CLOSED, closed.state());
        assertFalse(closed.storeReachable());
        assertEquals(8, closed.traffic().egressPackets(), "the last values");
        assertEquals(moved.peers(), closed.peers());
        assertEquals(List.of(), closed.offloads());
        backend.sent.addAndGet(100);
        assertEquals(8, node.stats().egressPackets(), "a closed node's data plane no longer counts");
    }

    private static PeerStats peerOf(NodeStats stats, Ipv4Prefix subnet) {
        return stats.peers().stream().filter(p -> p.subnet().equals(subnet)).findFirst()
                .orElseThrow(() -> new AssertionError("no peer " + subnet + " in " + stats.peers()));
    }

    @Test
    void withoutMoveOnLeaseLossTheNodeStaysLost() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        Recorder rec = new Recorder();
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = builder(alloc, backend, "192.0.2.2").moveOnLeaseLoss(false).listener(rec).build().start();
        closeables.add(node);
        Lease old = node.lease();
        takeOver(alloc, old.subnet(), "192.0.2.77");
        rec.await("state READY->LEASE_LOST");
        Thread.sleep(300);
        assertEquals(State.LEASE_LOST, node.state());
        assertEquals(old.subnet(), node.lease().subnet());
        assertEquals(1, backend.registrations.get());
        assertFalse(backend.closed, "the data plane stays until the program closes the node");
        assertTrue(rec.causes.get(0).getMessage().contains("192.0.2.77"), rec.causes.toString());
        assertEquals(OverlayException.Kind.LEASE_LOST, rec.causes.get(0).kind());
    }

    /** Another node takes the subnet, as an operator or a racing node would: its entry now names another address. */
    private static void takeOver(LocalSubnetAllocator alloc, Ipv4Prefix subnet, String ip) throws IOException {
        String text = Files.readString(alloc.file());
        String key = "\"" + subnet.toSubnetKey() + "\":{\"value\":{\"PublicIP\":\"";
        int at = text.indexOf(key);
        assertTrue(at >= 0, text);
        int end = text.indexOf('"', at + key.length());
        writeAtomically(alloc.file(), text.substring(0, at + key.length()) + ip + text.substring(end));
    }

    @Test
    void storeTroubleIsDegradedAndItsEndReadyAgain() throws Exception {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        Recorder rec = new Recorder();
        OverlayNode node = builder(alloc, new RecordingBackend(), "192.0.2.2").listener(rec).build().start();
        closeables.add(node);
        String good = Files.readString(alloc.file());
        writeAtomically(alloc.file(), "{\"config\": oops");
        rec.await("state READY->DEGRADED");
        assertEquals(OverlayException.Kind.STORE_CORRUPT, rec.causes.get(0).kind());
        assertEquals(State.DEGRADED, node.state());
        assertFalse(node.nodeStats().storeReachable());
        writeAtomically(alloc.file(), good);
        rec.await("state DEGRADED->READY");
        assertEquals(State.READY, node.state());
        assertTrue(node.nodeStats().storeReachable());
    }

    @Test
    void startAsyncRetriesWhileTheStoreIsUnavailable() throws Exception {
        FlakyAllocator flaky = new FlakyAllocator(allocator(Duration.ofHours(1)));
        flaky.down.set(true);
        Recorder rec = new Recorder();
        OverlayNode node = builder(flaky, new RecordingBackend(), "192.0.2.2").retryInterval(Duration.ofMillis(50))
                .listener(rec).build();
        closeables.add(node);
        CompletableFuture<OverlayNode> joined = node.startAsync();
        rec.await("startRetrying STORE_UNAVAILABLE");
        rec.await("startRetrying STORE_UNAVAILABLE");
        assertFalse(joined.isDone());
        assertEquals(State.STARTING, node.state());
        flaky.down.set(false);
        assertEquals(node, joined.get(10, TimeUnit.SECONDS));
        assertEquals(State.READY, node.state());
        assertTrue(flaky.calls.get() >= 3, "retried: " + flaky.calls.get());
    }

    @Test
    void startAsyncStopsAtAFailureThatWillNotPass() throws Exception {
        RecordingBackend denied = new RecordingBackend();
        denied.failure = new ErrnoException("ioctl(TUNSETIFF)", ErrnoException.EPERM);
        Recorder rec = new Recorder();
        OverlayNode node = builder(allocator(Duration.ofHours(1)), denied, "192.0.2.2").listener(rec).build();
        CompletableFuture<OverlayNode> f = node.startAsync();
        java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                () -> f.get(10, TimeUnit.SECONDS));
        assertEquals(OverlayException.Kind.NOT_PERMITTED, ((OverlayException) e.getCause()).kind());
        assertEquals(State.CLOSED, node.state());
        rec.await("state STARTING->CLOSED");
    }

    @Test
    void closingStopsAStartAsyncInProgress() throws Exception {
        FlakyAllocator flaky = new FlakyAllocator(allocator(Duration.ofHours(1)));
        flaky.down.set(true);
        OverlayNode node = builder(flaky, new RecordingBackend(), "192.0.2.2").retryInterval(Duration.ofMillis(50))
                .build();
        CompletableFuture<OverlayNode> joined = node.startAsync();
        Thread.sleep(200);
        node.close();
        assertTrue(joined.isCancelled());
        assertEquals(State.CLOSED, node.state());
        int calls = flaky.calls.get();
        Thread.sleep(300);
        assertEquals(calls, flaky.calls.get(), "no attempts after close");
    }

    @Test
    void everyStartFailureIsAnOverlayExceptionOfItsKind() {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(1));
        Map<OverlayException.Kind, Backend> cases = new EnumMap<>(OverlayException.Kind.class);
        RecordingBackend eperm = new RecordingBackend();
        eperm.failure = new ErrnoException("open(/dev/net/tun)", ErrnoException.EACCES);
        cases.put(OverlayException.Kind.NOT_PERMITTED, eperm);
        RecordingBackend busy = new RecordingBackend();
        busy.failure = new BindException("Address already in use");
        cases.put(OverlayException.Kind.DEVICE, busy);
        cases.put(OverlayException.Kind.CONFIG_INVALID, new RecordingBackend("vxlan"));
        for (Map.Entry<OverlayException.Kind, Backend> c : cases.entrySet()) {
            OverlayNode node = builder(alloc, c.getValue(), "192.0.2.2").build();
            OverlayException e = assertThrows(OverlayException.class, node::start, c.getKey().toString());
            assertEquals(c.getKey(), e.kind(), e.getMessage());
            assertEquals(State.CLOSED, node.state());
        }
        assertTrue(alloc.leases().size() <= 2, "leases of failed starts stay (as flanneld's), none for the refused");
        OverlayException missing = assertThrows(OverlayException.class, () -> OverlayNode.builder().allocator(alloc)
                .backend(new RecordingBackend()).underlayInterface("nosuch0").build().start());
        assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, missing.kind());
        assertTrue(missing.getMessage().contains("nosuch0"), missing.getMessage());
    }

    @Test
    void aBackendOfAnotherTypeIsRefusedBeforeAnyLease() {
        LocalSubnetAllocator alloc = allocator(Duration.ofHours(24));
        OverlayException e = assertThrows(OverlayException.class,
                () -> node(alloc, new RecordingBackend("vxlan"), "192.0.2.2", "a.env"));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(alloc.leases().isEmpty(), "no lease may be taken for a refused backend");
    }

    @Test
    void buildersRejectBadValuesNamingTheOption() {
        Map<String, Runnable> bad = Map.of(
                "allocator", () -> OverlayNode.builder().build(),
                "renewMargin", () -> OverlayNode.builder().renewMargin(Duration.ZERO),
                "retryInterval", () -> OverlayNode.builder().retryInterval(Duration.ofSeconds(-1)),
                "publicAddress", () -> OverlayNode.builder().publicAddress(Ipv4Prefix.parseAddress("127.0.0.2")),
                "threadFactory", () -> OverlayNode.builder().threadFactory(null),
                "underlayInterface", () -> OverlayNode.builder().underlayInterface(""),
                "leaseTtl", () -> LocalSubnetAllocator.builder().leaseTtl(Duration.ZERO),
                "file", () -> LocalSubnetAllocator.builder().build());
        for (Map.Entry<String, Runnable> b : bad.entrySet()) {
            OverlayException e = assertThrows(OverlayException.class, b.getValue()::run, b.getKey());
            assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, e.kind());
            assertTrue(e.getMessage().contains(b.getKey()), e.getMessage());
        }
    }

    @Test
    void theThreadFactoryMakesEveryThreadOfTheNodeAndItsBackend() throws Exception {
        List<String> made = new CopyOnWriteArrayList<>();
        AtomicInteger n = new AtomicInteger();
        ThreadFactory factory = r -> {
            Thread t = new Thread(r, "embedder-" + n.incrementAndGet());
            t.setDaemon(true);
            made.add(t.getName());
            return t;
        };
        RecordingBackend backend = new RecordingBackend();
        OverlayNode node = builder(allocator(Duration.ofHours(1)), backend, "192.0.2.2").threadFactory(factory)
                .build().start();
        closeables.add(node);
        assertEquals(List.of("embedder-1", "embedder-2", "embedder-3"), made, "control, store, backend");
        assertEquals("embedder-3", backend.thread.getName());
        assertTrue(backend.registeredOn.startsWith("embedder-"), backend.registeredOn);
    }

    /** Records events as lines, and the threads they arrive on. */
    static final class Recorder implements OverlayNode.Listener {
        final List<String> lines = new CopyOnWriteArrayList<>();
        final List<String> all = new CopyOnWriteArrayList<>();
        final List<OverlayException> causes = new CopyOnWriteArrayList<>();
        final java.util.Set<String> threads = ConcurrentHashMap.newKeySet();

        private void add(String line) {
            threads.add(Thread.currentThread().getName());
            lines.add(line);
            all.add(line);
        }

        @Override
        public void stateChanged(State previous, State current, OverlayException cause) {
            if (cause != null) {
                causes.add(cause);
            }
            add("state " + previous + "->" + current);
        }

        @Override
        public void subnetChanged(Lease previous, Lease current) {
            add("subnetChanged " + (previous == null ? null : previous.subnet()) + "->" + current.subnet());
        }

        @Override
        public void peerAdded(Lease peer) {
            add("peerAdded " + peer.subnet());
        }

        @Override
        public void peerRemoved(Lease peer) {
            add("peerRemoved " + peer.subnet());
        }

        @Override
        public void leaseRenewed(Lease lease) {
            add("leaseRenewed " + lease.subnet());
        }

        @Override
        public void startRetrying(OverlayException cause, Duration delay) {
            add("startRetrying " + cause.kind());
        }

        List<String> lines(int n) throws InterruptedException {
            OverlayNodeTest.await(() -> lines.size() >= n, n + " events");
            return lines.subList(0, n);
        }

        /** Waits for a line starting with {@code prefix} and removes every line up to it. */
        void await(String prefix) throws InterruptedException {
            long deadline = System.nanoTime() + 15_000_000_000L;
            while (true) {
                for (int i = 0; i < lines.size(); i++) {
                    if (lines.get(i).startsWith(prefix)) {
                        for (int j = 0; j <= i; j++) {
                            lines.remove(0);
                        }
                        return;
                    }
                }
                assertTrue(System.nanoTime() < deadline, "no '" + prefix + "' in " + lines);
                Thread.sleep(10);
            }
        }
    }

    /** The file allocator, but unreachable while {@link #down} is set (an in-memory stand-in for a store outage). */
    static final class FlakyAllocator implements SubnetAllocator {
        final SubnetAllocator real;
        final AtomicBoolean down = new AtomicBoolean();
        final AtomicInteger calls = new AtomicInteger();

        FlakyAllocator(SubnetAllocator real) {
            this.real = real;
        }

        private void check() {
            calls.incrementAndGet();
            if (down.get()) {
                throw new OverlayException(OverlayException.Kind.STORE_UNAVAILABLE, "the store is down (test)");
            }
        }

        @Override
        public NetworkConfig networkConfig() {
            check();
            return real.networkConfig();
        }

        @Override
        public Lease acquire(LeaseAttributes attributes, Ipv4Prefix previousSubnet) {
            check();
            return real.acquire(attributes, previousSubnet);
        }

        @Override
        public Lease renew(Lease lease) {
            check();
            return real.renew(lease);
        }

        @Override
        public void release(Lease lease) {
            check();
            real.release(lease);
        }

        @Override
        public List<Lease> leases() {
            check();
            return real.leases();
        }

        @Override
        public Watch watch(LeaseListener listener) {
            check();
            return real.watch(listener);
        }

        @Override
        public void close() {
        }
    }

    /** A backend that only records what the node tells it. */
    static final class RecordingBackend implements Backend {
        final String type;
        final Map<Ipv4Prefix, Lease> peers = new ConcurrentHashMap<>();
        final AtomicInteger registrations = new AtomicInteger();
        volatile boolean closed;
        volatile IOException failure;
        volatile Thread thread;
        volatile String registeredOn;
        // The current network's packet counter: each registration starts a new one at zero, as a new data plane does.
        volatile AtomicLong sent = new AtomicLong();
        static final List<OffloadStatus> OFFLOADS = List.of(new OffloadStatus("tun0",
                OffloadStatus.Feature.TUN_VNET_HEADER, OffloadStatus.Status.ON));

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
            registeredOn = Thread.currentThread().getName();
            Inet4Address ip = context.publicAddress();
            Lease lease = context.acquireLease(LeaseAttributes.udp(ip));
            if (failure != null) {
                throw failure;
            }
            registrations.incrementAndGet();
            if (thread == null) {
                thread = context.threadFactory().newThread(() -> { });
            }
            int mtu = context.interfaceMtu() - 28;
            closed = false;
            AtomicLong counter = new AtomicLong();
            sent = counter;
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
                    return new TrafficStats(counter.get(), 100 * counter.get(), 0, 0, 0,
                            new EnumMap<>(DropReason.class));
                }

                /** Every peer got every packet counted. */
                @Override
                public List<PeerStats> peerStats() {
                    List<PeerStats> out = new ArrayList<>();
                    for (Ipv4Prefix p : new java.util.TreeSet<>(peers.keySet())) {
                        out.add(new PeerStats(p, counter.get(), 100 * counter.get(), 0, 0, null));
                    }
                    return out;
                }

                @Override
                public List<OffloadStatus> offloads() {
                    return OFFLOADS;
                }

                @Override
                public void close() {
                    closed = true;
                }
            };
        }
    }
}
