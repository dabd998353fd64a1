package io.overlay4j.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.testing.AbstractSubnetAllocatorContractTest;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/** etcd goes away for a while and comes back: calls fail cleanly, the watch reports it and recovers. */
@Timeout(90)
class EtcdOutageTest {
    @RegisterExtension
    static final EtcdServerExtension ETCD = new EtcdServerExtension();
    private static final String PREFIX = "/outage/coreos.com/network";
    private static final Duration OUTAGE = Duration.ofSeconds(8);

    private static EtcdSubnetAllocator alloc() {
        return EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).prefix(PREFIX)
                .leaseTtl(Duration.ofMinutes(10)).requestTimeout(Duration.ofSeconds(3)).build();
    }

    private static LeaseAttributes node(int n) {
        return LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168.0." + n));
    }

    @Test
    void outageFailsCallsCleanlyAndTheWatchRecovers() throws Exception {
        ETCD.etcdctl("put", PREFIX + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        try (EtcdSubnetAllocator holder = alloc(); EtcdSubnetAllocator watcher = alloc()) {
            Lease held = holder.acquire(node(1), null);
            EtcdSubnetAllocatorTest.Recorder rec = new EtcdSubnetAllocatorTest.Recorder();
            SubnetAllocator.Watch w = watcher.watch(rec);
            try {
                AbstractSubnetAllocatorContractTest.assertSameLeases(java.util.List.of(held), rec.snapshot());

                long down = System.nanoTime();
                ETCD.stop();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (rec.errors.isEmpty() && System.nanoTime() < deadline) {
                    Thread.sleep(20);
                }
                assertFalse(rec.errors.isEmpty(), "onError during the outage");
                double errorAfter = (System.nanoTime() - down) / 1e9;
                Throwable first = rec.errors.get(0);
                assertTrue(first instanceof OverlayException
                        && ((OverlayException) first).kind() == Kind.STORE_UNAVAILABLE, String.valueOf(first));

                long t = System.nanoTime();
                OverlayException e = assertThrows(OverlayException.class, () -> holder.renew(held));
                double renewFailedIn = (System.nanoTime() - t) / 1e9;
                assertEquals(Kind.STORE_UNAVAILABLE, e.kind(), e.getMessage());
                assertTrue(e.getMessage().startsWith("etcd at " + ETCD.endpoint() + ": "), e.getMessage());
                assertTrue(e.getCause() != null, "cause chained");
                assertEquals(Kind.STORE_UNAVAILABLE,
                        assertThrows(OverlayException.class, holder::leases).kind());

                long left = OUTAGE.toNanos() - (System.nanoTime() - down);
                if (left > 0) {
                    Thread.sleep(TimeUnit.NANOSECONDS.toMillis(left));
                }
                int errorsDuringOutage = rec.errors.size();
                ETCD.start();
                long up = System.nanoTime();
                double outage = (up - down) / 1e9;

                // Another host (a fresh client) adds a lease right after the restart.
                Lease added;
                try (EtcdSubnetAllocator other = alloc()) {
                    added = other.acquire(node(2), null);
                }
                double addedAt = (System.nanoTime() - up) / 1e9;
                rec.await(ev -> ev.type() == LeaseEvent.Type.ADDED
                                && AbstractSubnetAllocatorContractTest.sameLease(ev.lease(), added),
                        Duration.ofSeconds(30));
                double watchRecovered = (System.nanoTime() - up) / 1e9;

                // The holder's own client reconnects; its lease is still there, unexpired.
                Lease renewed = null;
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (renewed == null) {
                    try {
                        renewed = holder.renew(held);
                    } catch (OverlayException ex) {
                        assertEquals(Kind.STORE_UNAVAILABLE, ex.kind(), ex.getMessage());
                        assertTrue(System.nanoTime() < until, "holder did not reconnect within 30 s");
                        Thread.sleep(100);
                    }
                }
                double holderRecovered = (System.nanoTime() - up) / 1e9;
                assertEquals(held.subnet(), renewed.subnet());
                assertTrue(renewed.expiration().isAfter(Instant.now().plusSeconds(500)));
                assertTrue(holder.leases().stream().anyMatch(l -> l.subnet().equals(held.subnet())),
                        "the held lease survived the outage");
                assertTrue(rec.all.stream().noneMatch(ev -> ev.type() == LeaseEvent.Type.REMOVED
                        && ev.lease().subnet().equals(held.subnet())), "never reported as lost");
                System.out.printf("outage: %.1f s down; onError after %.2f s (%d reports); renew failed in %.2f s;"
                                + " after restart: other client's acquire done %.2f s, watch delivered it %.2f s,"
                                + " holder's renew succeeded %.2f s%n", outage, errorAfter, errorsDuringOutage,
                        renewFailedIn, addedAt, watchRecovered, holderRecovered);
            } finally {
                w.close();
            }
        }
    }
}
