package io.overlay4j.etcd;

import static io.overlay4j.testing.AbstractSubnetAllocatorContractTest.assertSameLeases;
import static io.overlay4j.testing.AbstractSubnetAllocatorContractTest.sameLease;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.LeaseRules;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/** etcd-specific behaviour: flannel's storage byte for byte, races, reservations, corrupt data, compaction. */
@Timeout(60)
class EtcdSubnetAllocatorTest {
    @RegisterExtension
    static final EtcdServerExtension ETCD = new EtcdServerExtension();
    private static final AtomicInteger PREFIXES = new AtomicInteger();
    private static Client raw;

    private final List<AutoCloseable> closeables = new ArrayList<>();

    @BeforeAll
    static void rawClient() {
        raw = Client.builder().endpoints(ETCD.endpoint()).build();
    }

    @AfterAll
    static void closeRaw() {
        if (raw != null) {
            raw.close();
        }
    }

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : closeables) {
            c.close();
        }
    }

    private static String newPrefix() {
        return "/t" + PREFIXES.incrementAndGet() + "/coreos.com/network";
    }

    private EtcdSubnetAllocator alloc(String prefix) {
        EtcdSubnetAllocator a = EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).prefix(prefix).build();
        closeables.add(a);
        return a;
    }

    private static LeaseAttributes node(int n) {
        return LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168.0." + n));
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    private static KeyValue rawGet(String key) throws Exception {
        List<KeyValue> kvs = raw.getKVClient().get(bytes(key)).get(10, TimeUnit.SECONDS).getKvs();
        return kvs.isEmpty() ? null : kvs.get(0);
    }

    private static List<KeyValue> rawList(String prefix) throws Exception {
        return raw.getKVClient().get(bytes(prefix), GetOption.builder().isPrefix(true).build())
                .get(10, TimeUnit.SECONDS).getKvs();
    }

    private static String text(ByteSequence b) {
        return b.toString(StandardCharsets.UTF_8);
    }

    @Test
    void storesFlannelsKeyAndValueByteForByteWithA24hLease() throws Exception {
        String prefix = "/coreos.com/network";
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        EtcdSubnetAllocator a = EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).prefix(prefix + "/").build();
        closeables.add(a);
        assertEquals(prefix, a.prefix(), "trailing slash removed");
        Lease lease = a.acquire(LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.2")), null);

        String out = ETCD.etcdctl("get", "--prefix", prefix + "/subnets");
        String key = prefix + "/subnets/" + lease.subnet().toSubnetKey();
        assertTrue(key.matches("/coreos\\.com/network/subnets/100\\.96\\.\\d+\\.0-24"), key);
        assertEquals(key + "\n{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null}\n", out, "etcdctl get output");

        KeyValue kv = rawGet(key);
        assertNotEquals(0, kv.getLease(), "attached to an etcd lease");
        String ttl = ETCD.etcdctl("lease", "timetolive", Long.toHexString(kv.getLease()));
        Matcher m = Pattern.compile("granted with TTL\\((\\d+)s\\), remaining\\((\\d+)s\\)").matcher(ttl);
        assertTrue(m.find(), ttl);
        assertEquals(86400, Long.parseLong(m.group(1)), ttl);
        assertTrue(Long.parseLong(m.group(2)) >= 86390, ttl);
        long left = Duration.between(java.time.Instant.now(), lease.expiration()).toSeconds();
        assertTrue(left > 86390 && left <= 86400, "expiration ~ now + 24h: " + lease.expiration());
        // Clean up the default prefix for other tests.
        ETCD.etcdctl("del", "--prefix", prefix);
    }

    @Test
    void readsConfigWrittenByEtcdctlAndReportsFlannelsMessageWhenAbsent() {
        String prefix = newPrefix();
        EtcdSubnetAllocator a = alloc(prefix);
        OverlayException missing = assertThrows(OverlayException.class, a::networkConfig);
        assertEquals(Kind.CONFIG_NOT_FOUND, missing.kind());
        assertEquals("flannel config not found in etcd store. Did you create your config using etcdv3 API?",
                missing.getMessage());
        assertEquals(Kind.CONFIG_NOT_FOUND,
                assertThrows(OverlayException.class, () -> a.acquire(node(1), null)).kind());

        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        NetworkConfig c = a.networkConfig();
        assertEquals(Ipv4Prefix.parse("10.5.0.0/16"), c.network());
        assertEquals(24, c.subnetLen());
        assertEquals("10.5.1.0", c.subnetMin().getHostAddress());
        assertEquals("10.5.255.0", c.subnetMax().getHostAddress());
        assertEquals("udp", c.backendType());

        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":31}");
        OverlayException invalid = assertThrows(OverlayException.class, a::networkConfig);
        assertEquals(Kind.CONFIG_INVALID, invalid.kind());
        assertTrue(invalid.getMessage().contains("SubnetLen must be less than /31"), invalid.getMessage());
    }

    @Test
    void twentyRacersForEightSubnets() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"10.5.0.0/27\",\"SubnetLen\":30,"
                + "\"SubnetMin\":\"10.5.0.0\"}");
        int n = 20;
        List<EtcdSubnetAllocator> racers = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            racers.add(alloc(prefix));
        }
        assertEquals(8, (1 + (Ipv4Prefix.toInt(racers.get(0).networkConfig().subnetMax())
                - Ipv4Prefix.toInt(racers.get(0).networkConfig().subnetMin())) / 4), "the network has 8 subnets");
        // Count every PUT under the prefix while the race runs.
        List<WatchEvent> puts = new CopyOnWriteArrayList<>();
        io.etcd.jetcd.Watch.Watcher w = raw.getWatchClient().watch(bytes(prefix + "/subnets"),
                WatchOption.builder().isPrefix(true).withRevision(ETCD.revision() + 1).build(),
                r -> r.getEvents().stream().filter(e -> e.getEventType() == WatchEvent.EventType.PUT)
                        .forEach(puts::add));
        ExecutorService pool = Executors.newFixedThreadPool(n);
        List<Lease> won = new ArrayList<>();
        List<OverlayException> lost = new ArrayList<>();
        long started;
        try {
            CountDownLatch go = new CountDownLatch(1);
            List<Future<Lease>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                EtcdSubnetAllocator r = racers.get(i);
                LeaseAttributes attrs = node(i + 1);
                futures.add(pool.submit(() -> {
                    go.await();
                    return r.acquire(attrs, null);
                }));
            }
            started = System.nanoTime();
            go.countDown();
            for (Future<Lease> f : futures) {
                try {
                    won.add(f.get(30, TimeUnit.SECONDS));
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof OverlayException)) {
                        throw e;
                    }
                    lost.add((OverlayException) e.getCause());
                }
            }
        } finally {
            pool.shutdownNow();
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        long retries = racers.stream().mapToLong(EtcdSubnetAllocator::lostRaces).sum();
        System.out.printf("race: %d won, %d exhausted, %d lost-race retries, %d ms%n", won.size(), lost.size(),
                retries, ms);
        assertEquals(8, won.size(), "winners: " + won);
        assertEquals(8, won.stream().map(Lease::subnet).collect(Collectors.toSet()).size(), "distinct: " + won);
        assertEquals(12, lost.size());
        for (OverlayException e : lost) {
            assertEquals(Kind.SUBNETS_EXHAUSTED, e.kind(), e.getMessage());
            assertTrue(e.getMessage().contains("10.5.0.0/27") && e.getMessage().contains("8 subnets"),
                    e.getMessage());
        }
        List<KeyValue> kvs = rawList(prefix + "/subnets");
        assertEquals(8, kvs.size());
        for (KeyValue kv : kvs) {
            assertEquals(1, kv.getVersion(), text(kv.getKey()) + " written more than once");
            assertEquals(kv.getCreateRevision(), kv.getModRevision(), text(kv.getKey()));
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (puts.size() < 8 && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        Thread.sleep(200);
        w.close();
        assertEquals(8, puts.size(), "PUTs seen by a watch");
        assertEquals(8, puts.stream().map(e -> text(e.getKeyValue().getKey())).distinct().count());
    }

    @Test
    void reservationStaysALeaselessKeyAndGoesOnlyToItsPublicIp() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        String key = prefix + "/subnets/100.96.5.0-24";
        ETCD.etcdctl("put", key, node(9).toJson());
        // An incompatible reservation of the same PublicIP (below SubnetMin) comes first in key order.
        String odd = prefix + "/subnets/100.96.0.0-24";
        ETCD.etcdctl("put", odd, node(9).toJson());
        EtcdSubnetAllocator a = alloc(prefix);

        Ipv4Prefix reserved = Ipv4Prefix.parse("100.96.5.0/24");
        assertNotEquals(reserved, a.acquire(node(1), reserved).subnet(), "previous subnet must not take it");
        Lease mine = alloc(prefix).acquire(node(9), null);
        assertEquals(reserved, mine.subnet());
        assertTrue(mine.isReservation());
        assertEquals(0, rawGet(key).getLease(), "still without an etcd lease");

        LeaseAttributes vxlan = new LeaseAttributes(node(9).publicIp(), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}");
        Lease again = a.acquire(vxlan, null);
        assertEquals(reserved, again.subnet());
        assertNull(again.expiration());
        KeyValue kv = rawGet(key);
        assertEquals(0, kv.getLease());
        assertEquals(vxlan.toJson(), text(kv.getValue()), "new attributes published");

        Lease renewed = a.renew(again);
        assertTrue(renewed.isReservation());
        assertEquals(0, rawGet(key).getLease(), "renewal keeps it a reservation");
        a.release(renewed);
        assertNotNull(rawGet(key), "release never deletes a reservation");
        assertEquals(0, rawGet(key).getLease());
        KeyValue oddKv = rawGet(odd);
        assertNotNull(oddKv, "an incompatible reservation is never deleted");
        assertEquals(0, oddKv.getLease());
        assertEquals(node(9).toJson(), text(oddKv.getValue()));
        assertTrue(a.leases().stream().anyMatch(l -> l.subnet().equals(reserved) && l.isReservation()));
    }

    @Test
    void corruptValuesAndKeysAreSkippedNotFatal() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        ETCD.etcdctl("put", prefix + "/subnets/100.96.7.0-24", "not json");
        ETCD.etcdctl("put", prefix + "/subnets/garbage", node(66).toJson());
        EtcdSubnetAllocator peer = alloc(prefix);
        Lease peerLease = peer.acquire(node(2), null);
        EtcdSubnetAllocator a = alloc(prefix);

        assertSameLeases(List.of(peerLease), a.leases());
        assertTrue(a.corruptValues() >= 2, "counted: " + a.corruptValues());
        Lease mine = a.acquire(node(1), Ipv4Prefix.parse("100.96.7.0/24"));
        assertNotEquals(Ipv4Prefix.parse("100.96.7.0/24"), mine.subnet(), "a corrupt value still holds its subnet");

        Recorder rec = new Recorder();
        SubnetAllocator.Watch w = a.watch(rec);
        closeables.add(w);
        assertEquals(Set.of(peerLease.subnet(), mine.subnet()),
                rec.snapshot().stream().map(Lease::subnet).collect(Collectors.toSet()));
        long before = a.corruptValues();
        // Beyond the first 100 subnets, which are all a random pick can choose: these never overwrite a held lease.
        ETCD.etcdctl("put", prefix + "/subnets/100.96.208.0-24", "{\"PublicIP\":\"\"}");
        ETCD.etcdctl("put", prefix + "/subnets/100.96.209.0-24/x", "{}");
        Lease third = alloc(prefix).acquire(node(3), null);
        rec.await(e -> e.type() == LeaseEvent.Type.ADDED && sameLease(e.lease(), third));
        assertTrue(a.corruptValues() >= before + 2, a.corruptValues() + " vs " + before);
        assertTrue(rec.all.stream().noneMatch(e -> e.type() == LeaseEvent.Type.REMOVED), "no REMOVED: " + rec.all);
        assertEquals(List.of(), rec.errors);
        assertEquals(3, a.leases().size());
    }

    @Test
    void poisonedKeysAreNeverRoutedNorWithdrawOthers() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        Lease peer = alloc(prefix).acquire(node(2), null);
        EtcdSubnetAllocator a = alloc(prefix);
        Recorder rec = new Recorder();
        closeables.add(a.watch(rec));
        assertSameLeases(List.of(peer), rec.snapshot());

        String container = peer.subnet().addressAt(2).getHostAddress();
        String free = peer.subnet().equals(Ipv4Prefix.parse("100.96.200.0/24")) ? "100.96.201.0" : "100.96.200.0";
        String[][] poison = {
            {container + "-32", node(66).toJson()},             // would steal one container's traffic
            {"0.0.0.0-0", node(66).toJson()},                    // would swallow every unleased destination
            {"100.96.0.0-16", node(66).toJson()},                // the same, inside the network
            {free + "-24", "{}"},                                 // PublicIP 0.0.0.0: would loop datagrams
            {"100.96.202.0-24", "{\"PublicIP\":\"127.0.0.1\"}"},
            {"100.96.203.0-24", "{\"PublicIP\":\"100.96.1.1\"}"}, // inside the overlay
            {peer.subnet().toSubnetKey(), "{}"},                  // overwrites a live peer's value
        };
        long before = a.corruptValues();
        for (String[] p : poison) {
            ETCD.etcdctl("put", prefix + "/subnets/" + p[0], p[1]);
        }
        Lease third = alloc(prefix).acquire(node(3), null);
        rec.await(e -> e.type() == LeaseEvent.Type.ADDED && sameLease(e.lease(), third));
        assertEquals(List.of(LeaseEvent.Type.ADDED), rec.all.stream().map(LeaseEvent::type).toList(),
                "only the real lease arrived: " + rec.all);
        assertEquals(poison.length, a.corruptValues() - before, "each poisoned key counted once");
        assertEquals(List.of(), rec.errors);
        // The listing skips them (the peer's key now holds {} and is skipped too), and counts nothing twice.
        assertSameLeases(List.of(third), a.leases());
        assertEquals(poison.length, a.corruptValues() - before);
        // 0.0.0.0-0 and 100.96.0.0-16 do not make the network look full.
        assertTrue(LeaseRules.fits(a.networkConfig(), alloc(prefix).acquire(node(4), null).subnet()));
    }

    @Test
    void ownKeyIsAuthoritativeAtRenewal() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        EtcdSubnetAllocator a = alloc(prefix);
        Lease lease = a.acquire(node(1), null);
        String key = prefix + "/subnets/" + lease.subnet().toSubnetKey();
        String[][] tampering = {
            {"--ignore-lease", "garbage"},                     // unreadable, under our etcd lease
            {"--ignore-lease", "{\"PublicIP\":\"10.9.9.9\"}"},  // another address, but under our etcd lease
            {null, "{}"},                                      // PublicIP 0.0.0.0, no lease at all
            {null, "[1,2"},                                    // unreadable, no lease
        };
        for (String[] t : tampering) {
            if (t[0] != null) {
                ETCD.etcdctl("put", t[0], key, t[1]);
            } else {
                ETCD.etcdctl("put", key, t[1]);
            }
            Lease renewed = a.renew(lease);
            assertEquals(lease.subnet(), renewed.subnet(), t[1]);
            KeyValue kv = rawGet(key);
            assertEquals(node(1).toJson(), text(kv.getValue()), "rewritten after " + t[1]);
            assertNotEquals(0, kv.getLease(), "with an etcd lease again after " + t[1]);
            lease = renewed;
        }
        // A readable value of another usable address without our etcd lease is another node's claim: the lease is lost.
        ETCD.etcdctl("put", key, node(7).toJson());
        Lease mine = lease;
        OverlayException lost = assertThrows(OverlayException.class, () -> a.renew(mine));
        assertEquals(Kind.LEASE_LOST, lost.kind());
        assertTrue(lost.getMessage().contains("192.168.0.7"), lost.getMessage());
        assertEquals(node(7).toJson(), text(rawGet(key).getValue()), "left alone");
        // A fresh allocator does not know the etcd lease: for it, only the value counts.
        ETCD.etcdctl("del", key);
        Lease back = a.renew(mine);
        EtcdSubnetAllocator other = alloc(prefix);
        ETCD.etcdctl("put", "--ignore-lease", key, node(7).toJson());
        assertEquals(Kind.LEASE_LOST, assertThrows(OverlayException.class, () -> other.renew(back)).kind());
        assertEquals(back.subnet(), a.renew(back).subnet(), "the allocator that attached the etcd lease rewrites it");
    }

    @Test
    void theThreadFactoryMakesTheAllocatorsThreads() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        List<String> made = new CopyOnWriteArrayList<>();
        AtomicInteger n = new AtomicInteger();
        EtcdSubnetAllocator a = EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).prefix(prefix)
                .threadFactory(r -> {
                    Thread t = new Thread(r, "embedder-etcd-" + n.incrementAndGet());
                    t.setDaemon(true);
                    made.add(t.getName());
                    return t;
                }).build();
        closeables.add(a);
        assertEquals(List.of("embedder-etcd-1"), made, "the thread every etcd call starts from, made at build");
        Lease lease = a.acquire(node(1), null);
        List<String> deliveredOn = new CopyOnWriteArrayList<>();
        Recorder rec = new Recorder() {
            @Override
            public void onSnapshot(List<Lease> leases) {
                deliveredOn.add(Thread.currentThread().getName());
                super.onSnapshot(leases);
            }
        };
        closeables.add(a.watch(rec));
        assertSameLeases(List.of(lease), rec.snapshot());
        assertTrue(deliveredOn.get(0).startsWith("embedder-etcd-"), deliveredOn.toString());
        assertTrue(made.size() >= 3, "home, watch and jetcd's callback threads: " + made);
    }

    @Test
    void compactionWhileTheWatchIsBehindResyncsWithChangedAttributes() throws Exception {
        String prefix = newPrefix();
        ETCD.etcdctl("put", prefix + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        EtcdSubnetAllocator p1 = alloc(prefix);
        EtcdSubnetAllocator p2 = alloc(prefix);
        Lease l1 = p1.acquire(node(2), null);
        Lease l2 = p2.acquire(node(3), null);
        EtcdSubnetAllocator watcher = alloc(prefix);

        // The first onSnapshot blocks: the watch cannot start from R+1 until we have changed and compacted.
        CountDownLatch inSnapshot = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        Recorder rec = new Recorder() {
            @Override
            public void onSnapshot(List<Lease> leases) {
                super.onSnapshot(leases);
                if (inSnapshot.getCount() > 0) {
                    inSnapshot.countDown();
                    try {
                        release.await(20, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        };
        SubnetAllocator.Watch w = watcher.watch(rec);
        closeables.add(w);
        assertTrue(inSnapshot.await(10, TimeUnit.SECONDS));
        assertSameLeases(sorted(l1, l2), rec.snapshot());

        LeaseAttributes changed = new LeaseAttributes(node(2).publicIp(), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}");
        Lease l1b = p1.acquire(changed, null);
        assertEquals(l1.subnet(), l1b.subnet());
        p2.release(l2);
        Lease l3 = alloc(prefix).acquire(node(4), null);
        long compactedAt = ETCD.compact();
        release.countDown();

        List<Lease> resync = rec.snapshot();
        System.out.printf("compaction: resynced at revision > %d with %d leases%n", compactedAt, resync.size());
        assertSameLeases(sorted(l1b, l3), resync);
        assertEquals(changed, resync.stream().filter(l -> l.subnet().equals(l1.subnet())).findFirst().orElseThrow()
                .attributes(), "the changed attributes arrive");
        // And the watch goes on from there.
        Lease l4 = alloc(prefix).acquire(node(5), null);
        rec.await(e -> e.type() == LeaseEvent.Type.ADDED && sameLease(e.lease(), l4));
    }

    static List<Lease> sorted(Lease... leases) {
        return java.util.Arrays.stream(leases).sorted((x, y) -> x.subnet().compareTo(y.subnet())).toList();
    }

    /** Records what a watch delivers. */
    static class Recorder implements SubnetAllocator.LeaseListener {
        final BlockingQueue<List<Lease>> snapshots = new LinkedBlockingQueue<>();
        final BlockingQueue<LeaseEvent> events = new LinkedBlockingQueue<>();
        final List<LeaseEvent> all = new CopyOnWriteArrayList<>();
        final List<Throwable> errors = new CopyOnWriteArrayList<>();
        final AtomicInteger resumed = new AtomicInteger();

        @Override
        public void onSnapshot(List<Lease> leases) {
            snapshots.add(leases);
        }

        @Override
        public void onEvents(List<LeaseEvent> list) {
            all.addAll(list);
            events.addAll(list);
        }

        @Override
        public void onError(Throwable error) {
            errors.add(error);
        }

        @Override
        public void onResumed() {
            resumed.incrementAndGet();
        }

        List<Lease> snapshot() throws InterruptedException {
            List<Lease> s = snapshots.poll(15, TimeUnit.SECONDS);
            if (s == null) {
                fail("no snapshot within 15 s");
            }
            return s;
        }

        LeaseEvent await(Predicate<LeaseEvent> p) throws InterruptedException {
            return await(p, Duration.ofSeconds(10));
        }

        LeaseEvent await(Predicate<LeaseEvent> p, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                long left = deadline - System.nanoTime();
                LeaseEvent e = left > 0 ? events.poll(left, TimeUnit.NANOSECONDS) : null;
                if (e == null) {
                    fail("no matching event within " + timeout);
                }
                if (p.test(e)) {
                    return e;
                }
            }
        }
    }
}
