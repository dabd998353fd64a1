package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * What is particular to the file-backed allocator. The {@link SubnetAllocator} contract every allocator shares runs
 * against it in overlay-testing ({@code LocalSubnetAllocatorContractTest}), where the contract lives: overlay-testing
 * depends on this module, so this module's tests cannot depend on it.
 */
@Timeout(60)
class LocalSubnetAllocatorTest {
    private static final NetworkConfig NETWORK = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\"}");
    /** 10.5.0.0/28 with /30 subnets: exactly three, 10.5.0.4, 10.5.0.8, 10.5.0.12. */
    private static final NetworkConfig TINY = NetworkConfig.parse("{\"Network\":\"10.5.0.0/28\"}");

    @TempDir
    Path dir;

    private Path file;
    private Duration ttl;

    /** udp attributes for {@code 192.168.0.<n>}. */
    private static LeaseAttributes node(int n) {
        return LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168.0." + n));
    }

    private LocalSubnetAllocator open(NetworkConfig config) {
        return LocalSubnetAllocator.builder().file(file).network(config).leaseTtl(ttl)
                .pollInterval(Duration.ofMillis(20)).build();
    }

    private LocalSubnetAllocator fresh(NetworkConfig config) {
        file = dir.resolve("leases.json");
        ttl = Duration.ofHours(1);
        return open(config);
    }

    /** A clock tests move by hand. */
    private static final class ManualClock extends Clock {
        private final AtomicReference<Instant> now = new AtomicReference<>(Instant.parse("2026-11-25T23:00:00Z"));

        void advance(Duration d) {
            now.updateAndGet(i -> i.plus(d));
        }

        @Override
        public Instant instant() {
            return now.get();
        }

        @Override
        public java.time.ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }
    }

    @Test
    void twoAllocatorsInOneJvmShareOneFile() {
        try (LocalSubnetAllocator a = fresh(NETWORK); LocalSubnetAllocator b = open(NETWORK)) {
            Lease la = a.acquire(node(1), null);
            Lease lb = b.acquire(node(2), null);
            assertNotEquals(la.subnet(), lb.subnet());
            assertEquals(a.leases(), b.leases());
            assertEquals(2, b.leases().size());
            assertEquals(a.file(), b.file());
        }
    }

    @Test
    void aDifferentConfigInTheFileIsRejected() {
        try (LocalSubnetAllocator a = fresh(NETWORK)) {
            a.acquire(node(1), null);
        }
        NetworkConfig other = NetworkConfig.parse("{\"Network\":\"10.0.0.0/16\"}");
        OverlayException e = assertThrows(OverlayException.class, () -> open(other));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(e.getMessage().contains("holds network {\"Network\":\"100.96.0.0/16\""), e.getMessage());
        assertTrue(e.getMessage().contains("not {\"Network\":\"10.0.0.0/16\""), e.getMessage());
        try (LocalSubnetAllocator same = open(null)) {
            assertEquals(NETWORK, same.networkConfig());
            assertEquals(1, same.leases().size(), "the rejected open changed nothing");
        }
    }

    @Test
    void noConfigAnywhereIsConfigNotFound() {
        file = dir.resolve("none.json");
        ttl = Duration.ofHours(1);
        assertEquals(OverlayException.Kind.CONFIG_NOT_FOUND,
                assertThrows(OverlayException.class, () -> open(null)).kind());
        assertFalse(Files.exists(file));
    }

    @Test
    void fileFormatHoldsFlannelLeaseJson() throws IOException {
        ManualClock clock = new ManualClock();
        file = dir.resolve("leases.json");
        try (LocalSubnetAllocator a = LocalSubnetAllocator.builder().file(file).network(TINY).clock(clock)
                .leaseTtl(Duration.ofMinutes(40)).build()) {
            a.reserve(Ipv4Prefix.parse("10.5.0.4/30"), node(9));
            a.acquire(new LeaseAttributes(Ipv4Prefix.parseAddress("10.168.0.2"), null, "vxlan",
                    "{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}"), Ipv4Prefix.parse("10.5.0.8/30"));
        }
        String text = Files.readString(file);
        assertEquals("{\"config\":" + TINY.toJson() + ",\n\"leases\":{\n"
                + "\"10.5.0.4-30\":{\"value\":{\"PublicIP\":\"192.168.0.9\",\"PublicIPv6\":null},\"expires\":null},\n"
                + "\"10.5.0.8-30\":{\"value\":{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null,\"BackendType\":"
                + "\"vxlan\",\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}},"
                + "\"expires\":\"2026-11-25T23:40:00Z\"}}}\n", text);
    }

    @Test
    void expiredLeasesArePurgedOnWrite() throws IOException {
        ManualClock clock = new ManualClock();
        file = dir.resolve("leases.json");
        try (LocalSubnetAllocator a = LocalSubnetAllocator.builder().file(file).network(TINY).clock(clock)
                .leaseTtl(Duration.ofMinutes(10)).build()) {
            Lease old = a.acquire(node(1), null);
            a.acquire(node(2), null);
            a.acquire(node(3), null);
            clock.advance(Duration.ofMinutes(5));
            a.renew(a.leases().stream().filter(l -> l.attributes().equals(node(2))).findFirst().orElseThrow());
            a.renew(a.leases().stream().filter(l -> l.attributes().equals(node(3))).findFirst().orElseThrow());
            clock.advance(Duration.ofMinutes(6));
            assertEquals(2, a.leases().size(), "node 1's lease has expired");
            assertTrue(Files.readString(file).contains(old.subnet().toSubnetKey()), "not purged before a write");
            a.renew(a.leases().get(0));
            assertFalse(Files.readString(file).contains(old.subnet().toSubnetKey()), "purged by the write");
            assertEquals(old.subnet(), a.acquire(node(4), null).subnet(), "the expired subnet is free again");
        }
    }

    @Test
    void renewRecreatesAnExpiredLeaseWhenFree() {
        ManualClock clock = new ManualClock();
        file = dir.resolve("leases.json");
        try (LocalSubnetAllocator a = LocalSubnetAllocator.builder().file(file).network(NETWORK).clock(clock)
                .leaseTtl(Duration.ofMinutes(10)).build()) {
            Lease lease = a.acquire(node(1), null);
            clock.advance(Duration.ofMinutes(11));
            assertEquals(List.of(), a.leases());
            Lease renewed = a.renew(lease);
            assertEquals(lease.subnet(), renewed.subnet());
            assertEquals(List.of(renewed), a.leases());
        }
    }

    @Test
    void incompatibleLeaseOfOurIpIsDeletedButNotAReservation() throws IOException {
        file = dir.resolve("leases.json");
        Files.writeString(file, "{\"config\":" + NETWORK.toJson() + ",\"leases\":{"
                + "\"100.96.0.0-24\":{\"value\":{\"PublicIP\":\"192.168.0.1\"},\"expires\":\"2099-01-01T00:00:00Z\"},"
                + "\"100.96.5.0-25\":{\"value\":{\"PublicIP\":\"192.168.0.2\"},\"expires\":null}}}");
        ttl = Duration.ofHours(1);
        try (LocalSubnetAllocator a = open(null)) {
            Lease l1 = a.acquire(node(1), null);
            assertNotEquals(Ipv4Prefix.parse("100.96.0.0/24"), l1.subnet());
            Lease l2 = a.acquire(node(2), null);
            assertNotEquals(Ipv4Prefix.parse("100.96.5.0/25"), l2.subnet());
            assertFalse(l2.subnet().overlaps(Ipv4Prefix.parse("100.96.5.0/25")), "the reservation stays taken");
            String text = Files.readString(file);
            assertFalse(text.contains("\"100.96.0.0-24\""), "incompatible lease deleted: " + text);
            assertTrue(text.contains("\"100.96.5.0-25\""), "reservation kept: " + text);
            List<Ipv4Prefix> subnets = a.leases().stream().map(Lease::subnet).toList();
            assertEquals(List.of(l1.subnet(), l2.subnet()).stream().sorted().toList(), subnets,
                    "a reservation of another length is never routed");
        }
    }

    @Test
    void corruptEntryIsSkippedAndOthersKept() throws IOException, InterruptedException {
        file = dir.resolve("leases.json");
        String bad = "\"10.5.0.4-30\":{\"value\":{\"PublicIP\":\"\"},\"expires\":null}";
        String junk = "\"junk\":[1,2]";
        Files.writeString(file, "{\"config\":" + TINY.toJson() + ",\"leases\":{" + bad + "," + junk + ","
                + "\"10.5.0.8-30\":{\"value\":{\"PublicIP\":\"192.168.0.2\"},\"expires\":null}}}");
        ttl = Duration.ofHours(1);
        try (LocalSubnetAllocator a = open(null)) {
            List<Lease> leases = a.leases();
            assertEquals(1, leases.size());
            assertEquals(Ipv4Prefix.parse("10.5.0.8/30"), leases.get(0).subnet());
            assertEquals(2, a.corruptEntries());
            BlockingQueue<List<Lease>> snapshots = new LinkedBlockingQueue<>();
            try (SubnetAllocator.Watch w = a.watch(new SubnetAllocator.LeaseListener() {
                @Override
                public void onSnapshot(List<Lease> l) {
                    snapshots.add(l);
                }

                @Override
                public void onEvents(List<LeaseEvent> events) {
                }
            })) {
                assertEquals(leases, snapshots.poll(10, TimeUnit.SECONDS));
            }
            assertEquals(Ipv4Prefix.parse("10.5.0.12/30"), a.acquire(node(3), null).subnet(),
                    "the unreadable entry's subnet stays taken");
            assertEquals(OverlayException.Kind.SUBNETS_EXHAUSTED,
                    assertThrows(OverlayException.class, () -> a.acquire(node(4), null)).kind());
            String text = Files.readString(file);
            assertTrue(text.contains(bad) && text.contains(junk), "unreadable entries are kept: " + text);
        }
    }

    @Test
    void corruptFileIsStoreCorruptNeverEmpty() throws IOException, InterruptedException {
        try (LocalSubnetAllocator a = fresh(NETWORK)) {
            Lease lease = a.acquire(node(1), null);
            BlockingQueue<Object> seen = new LinkedBlockingQueue<>();
            try (SubnetAllocator.Watch w = a.watch(new SubnetAllocator.LeaseListener() {
                @Override
                public void onSnapshot(List<Lease> l) {
                    seen.add(l);
                }

                @Override
                public void onEvents(List<LeaseEvent> events) {
                    seen.add(events);
                }

                @Override
                public void onError(Throwable error) {
                    seen.add(error);
                }
            })) {
                assertEquals(List.of(lease), seen.poll(10, TimeUnit.SECONDS));
                // Written atomically: a torn write would first show an empty file (no config) to the watch.
                Path tmp = file.resolveSibling("corrupt.tmp");
                Files.writeString(tmp, "{\"config\":{}, oops");
                Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                Object error = seen.poll(10, TimeUnit.SECONDS);
                assertTrue(error instanceof OverlayException, String.valueOf(error));
                assertEquals(OverlayException.Kind.STORE_CORRUPT, ((OverlayException) error).kind());
                for (Runnable call : List.<Runnable>of(a::leases, () -> a.acquire(node(2), null),
                        () -> a.release(lease))) {
                    OverlayException e = assertThrows(OverlayException.class, call::run);
                    assertEquals(OverlayException.Kind.STORE_CORRUPT, e.kind());
                    assertTrue(e.getMessage().contains("offset"), e.getMessage());
                }
                assertEquals(null, seen.poll(500, TimeUnit.MILLISECONDS), "no REMOVED events, one error report");
            }
        }
    }

    @Test
    void listenerExceptionsDoNotKillTheWatch() throws InterruptedException {
        try (LocalSubnetAllocator a = fresh(NETWORK)) {
            AtomicInteger calls = new AtomicInteger();
            CountDownLatch snapshot = new CountDownLatch(1);
            BlockingQueue<LeaseEvent> events = new LinkedBlockingQueue<>();
            try (SubnetAllocator.Watch w = a.watch(new SubnetAllocator.LeaseListener() {
                @Override
                public void onSnapshot(List<Lease> l) {
                    calls.incrementAndGet();
                    snapshot.countDown();
                    throw new IllegalStateException("listener bug (expected by the test)");
                }

                @Override
                public void onEvents(List<LeaseEvent> list) {
                    events.addAll(list);
                    throw new IllegalStateException("listener bug (expected by the test)");
                }
            })) {
                assertTrue(snapshot.await(10, TimeUnit.SECONDS));
                Lease l1 = a.acquire(node(1), null);
                assertEquals(l1, events.poll(10, TimeUnit.SECONDS).lease());
                Lease l2 = a.acquire(node(2), null);
                assertEquals(l2, events.poll(10, TimeUnit.SECONDS).lease());
                assertEquals(1, calls.get());
            }
        }
    }

    @Test
    void closeStopsWatchesAndRejectsCalls() throws InterruptedException {
        LocalSubnetAllocator a = fresh(NETWORK);
        BlockingQueue<Object> seen = new LinkedBlockingQueue<>();
        a.watch(new SubnetAllocator.LeaseListener() {
            @Override
            public void onSnapshot(List<Lease> l) {
                seen.add(l);
            }

            @Override
            public void onEvents(List<LeaseEvent> list) {
                seen.add(list);
            }
        });
        assertEquals(List.of(), seen.poll(10, TimeUnit.SECONDS));
        a.close();
        a.close();
        assertThrows(OverlayException.class, a::leases);
        try (LocalSubnetAllocator b = open(null)) {
            b.acquire(node(1), null);
        }
        assertEquals(null, seen.poll(500, TimeUnit.MILLISECONDS));
        assertTrue(Thread.getAllStackTraces().keySet().stream()
                .noneMatch(t -> t.getName().equals("overlay4j-local-watch") && t.isAlive()));
    }

    @Test
    void reserveRejectsConflictsAndOutsiders() {
        try (LocalSubnetAllocator a = fresh(NETWORK)) {
            Lease l = a.acquire(node(1), Ipv4Prefix.parse("100.96.3.0/24"));
            assertEquals(OverlayException.Kind.LEASE_CONFLICT, assertThrows(OverlayException.class,
                    () -> a.reserve(Ipv4Prefix.parse("100.96.3.0/24"), node(2))).kind());
            assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, assertThrows(OverlayException.class,
                    () -> a.reserve(Ipv4Prefix.parse("10.0.0.0/24"), node(2))).kind());
            Lease r = a.reserve(l.subnet(), node(1));
            assertTrue(r.isReservation());
            assertEquals(List.of(r), a.leases());
        }
    }

    @Test
    void severalProcessesShareOneFile() throws Exception {
        try (LocalSubnetAllocator a = fresh(NETWORK)) {
            String javaBin = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            List<Process> children = new ArrayList<>();
            for (int host = 1; host <= 3; host++) {
                children.add(new ProcessBuilder(javaBin, "-cp", System.getProperty("java.class.path"),
                        LocalAllocatorChildProcess.class.getName(), file.toString(), Integer.toString(host), "6")
                        .redirectError(ProcessBuilder.Redirect.DISCARD).start());
            }
            for (int i = 1; i <= 6; i++) {
                a.acquire(node(i), null); // this JVM competes too
            }
            Set<Ipv4Prefix> fromChildren = new HashSet<>();
            for (Process p : children) {
                assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child finished");
                String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
                assertEquals(0, p.exitValue(), out);
                for (String line : out.strip().split("\n")) {
                    fromChildren.add(Ipv4Prefix.parse(line.strip()));
                }
            }
            assertEquals(18, fromChildren.size(), "distinct subnets across processes");
            List<Lease> leases = a.leases();
            assertEquals(24, leases.size());
            assertTrue(leases.stream().map(Lease::subnet).collect(java.util.stream.Collectors.toSet())
                    .containsAll(fromChildren));
        }
    }
}
