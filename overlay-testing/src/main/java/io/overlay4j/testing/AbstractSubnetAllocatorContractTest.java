package io.overlay4j.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.SubnetAllocator;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link SubnetAllocator} must show, run against each implementation (overlay-api's file-backed
 * allocator in this module's tests, the etcd one in {@code overlay-etcd}). Subclasses provide a fresh store per test
 * and further clients on it.
 *
 * <p>Clients returned by {@link #newStore} and {@link #connect} are closed after each test.
 */
@Timeout(60)
public abstract class AbstractSubnetAllocatorContractTest {
    /** The usual test network: 100.96.0.0/16, /24 subnets from 100.96.1.0 to 100.96.255.0. */
    protected static final NetworkConfig NETWORK = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\"}");
    /** A tiny network: 10.5.0.0/28 with /30 subnets, so exactly three: 10.5.0.4, 10.5.0.8, 10.5.0.12. */
    protected static final NetworkConfig TINY = NetworkConfig.parse("{\"Network\":\"10.5.0.0/28\"}");
    /** The default TTL for tests that do not test expiry. */
    protected static final Duration LONG_TTL = Duration.ofHours(1);
    private static final Duration SLACK = Duration.ofSeconds(2);

    private final List<SubnetAllocator> clients = new ArrayList<>();

    /**
     * Creates a fresh, empty store holding {@code config}, whose leases live {@code leaseTtl}, and returns a first
     * client on it. Later {@link #connect()} and {@link #reserve} calls act on this store.
     */
    protected abstract SubnetAllocator newStore(NetworkConfig config, Duration leaseTtl);

    /** Another client on the store made by {@link #newStore}, as a second host would have. */
    protected abstract SubnetAllocator connect();

    /** Writes a reservation (a lease without expiry) into the store, as an administrator would. */
    protected abstract void reserve(Ipv4Prefix subnet, LeaseAttributes attrs);

    private SubnetAllocator store(NetworkConfig config, Duration ttl) {
        SubnetAllocator a = newStore(config, ttl);
        clients.add(a);
        return a;
    }

    private SubnetAllocator client() {
        SubnetAllocator a = connect();
        clients.add(a);
        return a;
    }

    @AfterEach
    void closeClients() {
        for (SubnetAllocator a : clients) {
            a.close();
        }
        clients.clear();
    }

    /** udp attributes for {@code 192.168.0.<n>}. */
    protected static LeaseAttributes node(int n) {
        return LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168.0." + n));
    }

    private static void assertFits(NetworkConfig config, Ipv4Prefix subnet) {
        assertEquals(config.subnetLen(), subnet.length(), subnet + " length");
        int ip = subnet.networkInt();
        assertTrue(Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMin())) >= 0, subnet + " < min");
        assertTrue(Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMax())) <= 0, subnet + " > max");
    }

    /**
     * Whether two views of one lease agree: subnet, attributes, and expiration within 2 s (or both reservations).
     * Stores keep whole seconds, and two clients compute an expiration from the TTL at different moments.
     */
    public static boolean sameLease(Lease a, Lease b) {
        if (!a.subnet().equals(b.subnet()) || !a.attributes().equals(b.attributes())
                || a.isReservation() != b.isReservation()) {
            return false;
        }
        return a.isReservation() || Duration.between(a.expiration(), b.expiration()).abs().compareTo(SLACK) <= 0;
    }

    /** {@link #sameLease} for each lease of two lists, in order. */
    public static void assertSameLeases(List<Lease> expected, List<Lease> actual) {
        boolean same = expected.size() == actual.size();
        for (int i = 0; same && i < expected.size(); i++) {
            same = sameLease(expected.get(i), actual.get(i));
        }
        assertTrue(same, "expected " + expected + " but was " + actual);
    }

    private static List<Ipv4Prefix> subnets(List<Lease> leases) {
        return leases.stream().map(Lease::subnet).toList();
    }

    @Test
    void networkConfigIsTheStoredOne() {
        assertEquals(NETWORK, store(NETWORK, LONG_TTL).networkConfig());
        assertEquals(NETWORK, client().networkConfig());
    }

    @Test
    void twoClientsGetDistinctSubnetsInRange() {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        SubnetAllocator b = client();
        Lease la = a.acquire(node(1), null);
        Lease lb = b.acquire(node(2), null);
        assertNotEquals(la.subnet(), lb.subnet());
        assertFalse(la.subnet().overlaps(lb.subnet()));
        assertFits(NETWORK, la.subnet());
        assertFits(NETWORK, lb.subnet());
        assertEquals(node(1), la.attributes());
        assertFalse(la.isReservation());
        List<Ipv4Prefix> expected = new ArrayList<>(List.of(la.subnet(), lb.subnet()));
        expected.sort(null);
        assertEquals(expected, subnets(a.leases()));
        assertSameLeases(List.of(la, lb).stream().sorted((x, y) -> x.subnet().compareTo(y.subnet())).toList(),
                b.leases());
    }

    @Test
    void samePublicIpGetsItsLeaseBackWithNewAttributes() {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Lease first = a.acquire(node(1), null);
        a.acquire(node(2), null);
        LeaseAttributes changed = new LeaseAttributes(node(1).publicIp(), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}");
        Lease again = client().acquire(changed, Ipv4Prefix.parse("100.96.200.0/24"));
        assertEquals(first.subnet(), again.subnet(), "the PublicIP's lease wins over the previous subnet");
        assertEquals(changed, again.attributes());
        assertEquals(2, a.leases().size());
        assertTrue(a.leases().stream().anyMatch(l -> sameLease(l, again)), "the new attributes are published");
    }

    @Test
    void previousSubnetIsHonouredWhenFree() {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Ipv4Prefix previous = Ipv4Prefix.parse("100.96.77.0/24");
        assertEquals(previous, a.acquire(node(1), previous).subnet());
        // Host bits in the previous subnet do not matter: an Ipv4Prefix has them cleared already.
        assertEquals(Ipv4Prefix.parse("100.96.78.0/24"),
                a.acquire(node(2), Ipv4Prefix.parse("100.96.78.1/24")).subnet());
    }

    @Test
    void previousSubnetIsIgnoredWhenTakenOrIncompatible() {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Ipv4Prefix previous = Ipv4Prefix.parse("100.96.77.0/24");
        a.acquire(node(1), previous);
        Lease other = client().acquire(node(2), previous);
        assertNotEquals(previous, other.subnet());
        assertFits(NETWORK, other.subnet());
        String[] incompatible = {"100.96.0.0/24", "100.96.5.0/25", "100.97.5.0/24", "100.96.0.0/16"};
        for (int i = 0; i < incompatible.length; i++) {
            String bad = incompatible[i];
            Lease l = a.acquire(node(10 + i), Ipv4Prefix.parse(bad));
            assertNotEquals(Ipv4Prefix.parse(bad), l.subnet(), bad);
            assertFits(NETWORK, l.subnet());
        }
    }

    @Test
    void fullNetworkGivesSubnetsExhausted() {
        SubnetAllocator a = store(TINY, LONG_TTL);
        Set<Ipv4Prefix> got = new HashSet<>();
        for (int i = 1; i <= 3; i++) {
            got.add(a.acquire(node(i), null).subnet());
        }
        assertEquals(Set.of(Ipv4Prefix.parse("10.5.0.4/30"), Ipv4Prefix.parse("10.5.0.8/30"),
                Ipv4Prefix.parse("10.5.0.12/30")), got);
        OverlayException e = assertThrows(OverlayException.class, () -> client().acquire(node(4), null));
        assertEquals(OverlayException.Kind.SUBNETS_EXHAUSTED, e.kind());
        assertTrue(e.getMessage().contains("10.5.0.0/28"), e.getMessage());
        assertEquals(3, a.leases().size());
    }

    @Test
    void renewPushesExpirationForward() throws InterruptedException {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Instant before = Instant.now();
        Lease lease = a.acquire(node(1), null);
        assertNotNull(lease.expiration());
        assertTrue(!lease.expiration().isBefore(before.plus(LONG_TTL).minusSeconds(2)), "expiration ~ now + TTL");
        assertTrue(lease.expiration().isBefore(Instant.now().plus(LONG_TTL).plusSeconds(2)), "expiration ~ now + TTL");
        Thread.sleep(1100); // stores may keep whole seconds
        Lease renewed = client().renew(lease);
        assertEquals(lease.subnet(), renewed.subnet());
        assertTrue(renewed.expiration().isAfter(lease.expiration()), renewed + " after " + lease);
        assertSameLeases(List.of(renewed), a.leases());
    }

    @Test
    void renewOfALeaseSomeoneElseNowHoldsIsLost() {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Lease mine = a.acquire(node(1), null);
        a.release(mine);
        Lease theirs = client().acquire(node(2), mine.subnet());
        assertEquals(mine.subnet(), theirs.subnet());
        OverlayException e = assertThrows(OverlayException.class, () -> a.renew(mine));
        assertEquals(OverlayException.Kind.LEASE_LOST, e.kind());
        assertSameLeases(List.of(theirs), a.leases());
    }

    @Test
    void releaseFreesTheSubnet() {
        SubnetAllocator a = store(TINY, LONG_TTL);
        Lease l1 = a.acquire(node(1), null);
        a.acquire(node(2), null);
        a.acquire(node(3), null);
        a.release(l1);
        assertFalse(subnets(a.leases()).contains(l1.subnet()));
        assertEquals(2, a.leases().size());
        assertEquals(l1.subnet(), client().acquire(node(4), null).subnet(), "the only free subnet");
        a.release(l1); // not ours any more: nothing happens
        assertEquals(3, a.leases().size());
    }

    @Test
    void reservationIsOnlyForItsPublicIp() {
        SubnetAllocator a = store(TINY, LONG_TTL);
        Ipv4Prefix reserved = Ipv4Prefix.parse("10.5.0.8/30");
        reserve(reserved, node(9));
        Lease r = a.leases().get(0);
        assertEquals(reserved, r.subnet());
        assertTrue(r.isReservation());
        assertNotEquals(reserved, a.acquire(node(1), reserved).subnet(), "previous subnet must not take it");
        assertNotEquals(reserved, client().acquire(node(2), null).subnet());
        assertEquals(OverlayException.Kind.SUBNETS_EXHAUSTED,
                assertThrows(OverlayException.class, () -> a.acquire(node(3), null)).kind());

        Lease mine = client().acquire(node(9), null);
        assertEquals(reserved, mine.subnet());
        assertTrue(mine.isReservation());
        assertNull(mine.expiration());
        Lease renewed = a.renew(mine);
        assertTrue(renewed.isReservation());
        a.release(renewed);
        Lease still = a.leases().stream().filter(l -> l.subnet().equals(reserved)).findFirst().orElseThrow();
        assertTrue(still.isReservation(), "release never deletes a reservation");
        assertEquals(3, a.leases().size());
    }

    @Test
    void watchSeesSnapshotThenAddedAndRemoved() throws InterruptedException {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Lease existing = a.acquire(node(1), null);
        Recorder rec = new Recorder();
        SubnetAllocator watcher = client();
        try (SubnetAllocator.Watch w = watcher.watch(rec)) {
            assertSameLeases(List.of(existing), rec.snapshot());
            SubnetAllocator b = client();
            Lease added = b.acquire(node(2), null);
            rec.await(e -> e.type() == LeaseEvent.Type.ADDED && sameLease(e.lease(), added));
            b.release(added);
            LeaseEvent removed = rec.await(e -> e.type() == LeaseEvent.Type.REMOVED);
            assertEquals(added.subnet(), removed.lease().subnet());
            assertEquals(node(2), removed.lease().attributes(), "REMOVED carries the last known attributes");
            assertEquals(List.of(), rec.errors());
        }
    }

    @Test
    void watchReportsExpiryAsRemoved() throws InterruptedException {
        SubnetAllocator a = store(NETWORK, Duration.ofSeconds(2));
        Lease lease = a.acquire(node(1), null);
        Recorder rec = new Recorder();
        try (SubnetAllocator.Watch w = client().watch(rec)) {
            assertSameLeases(List.of(lease), rec.snapshot());
            LeaseEvent removed = rec.await(e -> e.type() == LeaseEvent.Type.REMOVED);
            assertTrue(sameLease(lease, removed.lease()), removed + " vs " + lease);
            assertFalse(Instant.now().isBefore(lease.expiration().minusMillis(100)), "removed before it expired");
            assertEquals(List.of(), a.leases());
        }
    }

    @Test
    void closedWatchDeliversNothingMore() throws InterruptedException {
        SubnetAllocator a = store(NETWORK, LONG_TTL);
        Recorder rec = new Recorder();
        SubnetAllocator.Watch w = client().watch(rec);
        assertEquals(List.of(), rec.snapshot());
        w.close();
        w.close();
        a.acquire(node(1), null);
        assertNull(rec.poll(Duration.ofSeconds(1)));
    }

    @Test
    void concurrentClientsGetDistinctSubnets() throws Exception {
        store(NETWORK, LONG_TTL);
        int n = 8;
        List<SubnetAllocator> many = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            many.add(client());
        }
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Lease>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                SubnetAllocator c = many.get(i);
                LeaseAttributes attrs = node(i + 1);
                futures.add(pool.submit(() -> {
                    start.await();
                    return c.acquire(attrs, null);
                }));
            }
            start.countDown();
            Set<Ipv4Prefix> got = new HashSet<>();
            for (Future<Lease> f : futures) {
                Lease l = f.get(30, TimeUnit.SECONDS);
                assertFits(NETWORK, l.subnet());
                got.add(l.subnet());
            }
            assertEquals(n, got.size(), "distinct subnets: " + got);
            assertEquals(got, new HashSet<>(subnets(many.get(0).leases())));
        } finally {
            pool.shutdownNow();
        }
    }

    /** Records what a watch delivers. */
    protected static final class Recorder implements SubnetAllocator.LeaseListener {
        private final BlockingQueue<List<Lease>> snapshots = new LinkedBlockingQueue<>();
        private final BlockingQueue<LeaseEvent> events = new LinkedBlockingQueue<>();
        private final List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();

        /** The errors reported so far. */
        public List<Throwable> errors() {
            return List.copyOf(errors);
        }

        /** The next event, or {@code null} if none arrives within {@code timeout}. */
        public LeaseEvent poll(Duration timeout) throws InterruptedException {
            return events.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        }

        @Override
        public void onSnapshot(List<Lease> leases) {
            snapshots.add(leases);
        }

        @Override
        public void onEvents(List<LeaseEvent> list) {
            events.addAll(list);
        }

        @Override
        public void onError(Throwable error) {
            errors.add(error);
        }

        /** The first snapshot, waiting up to 10 s. */
        public List<Lease> snapshot() throws InterruptedException {
            List<Lease> s = snapshots.poll(10, TimeUnit.SECONDS);
            if (s == null) {
                fail("no snapshot within 10 s");
            }
            return s;
        }

        /** The first event matching {@code p} (earlier non-matching ones are dropped), waiting up to 10 s. */
        public LeaseEvent await(Predicate<LeaseEvent> p) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (true) {
                long left = deadline - System.nanoTime();
                LeaseEvent e = left > 0 ? events.poll(left, TimeUnit.NANOSECONDS) : null;
                if (e == null) {
                    fail("no matching event within 10 s");
                }
                if (p.test(e)) {
                    return e;
                }
            }
        }
    }
}
