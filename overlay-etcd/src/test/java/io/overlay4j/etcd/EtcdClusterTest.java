package io.overlay4j.etcd;

import static io.overlay4j.testing.AbstractSubnetAllocatorContractTest.sameLease;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The allocator against a three-member etcd cluster: it fails over when the leader dies, and reports the loss and the
 * return of quorum through its watch.
 */
@Timeout(90)
class EtcdClusterTest {
    @RegisterExtension
    final EtcdServerExtension cluster = EtcdServerExtension.cluster(3);

    private EtcdSubnetAllocator alloc() {
        return EtcdSubnetAllocator.builder().endpoints(cluster.endpoints()).requestTimeout(Duration.ofSeconds(5))
                .build();
    }

    private static LeaseAttributes node(int n) {
        return LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168.0." + n));
    }

    @Test
    void leaderDiesAndTheAllocatorGoesOnWithTheOthers() throws Exception {
        cluster.etcdctl("put", "/coreos.com/network/config", "{\"Network\":\"100.96.0.0/16\"}");
        try (EtcdSubnetAllocator a = alloc(); EtcdSubnetAllocator b = alloc()) {
            Lease first = a.acquire(node(1), null);
            EtcdSubnetAllocatorTest.Recorder rec = new EtcdSubnetAllocatorTest.Recorder();
            try (SubnetAllocator.Watch w = b.watch(rec)) {
                assertEquals(1, rec.snapshot().size());
                int leader = cluster.leader();
                long killed = System.nanoTime();
                cluster.kill(leader);
                // The next calls may meet the election; they must complete once it is over, within their bound.
                Lease second = null;
                while (second == null) {
                    try {
                        second = b.acquire(node(2), null);
                    } catch (OverlayException e) {
                        assertEquals(Kind.STORE_UNAVAILABLE, e.kind(), e.getMessage());
                        assertTrue(System.nanoTime() - killed < TimeUnit.SECONDS.toNanos(30), e.getMessage());
                    }
                }
                double joinedAfter = (System.nanoTime() - killed) / 1e9;
                Lease added = second;
                rec.await(e -> e.type() == LeaseEvent.Type.ADDED && sameLease(e.lease(), added),
                        Duration.ofSeconds(30));
                Lease renewed = a.renew(first);
                assertEquals(first.subnet(), renewed.subnet());
                assertNotEquals(first.subnet(), second.subnet());
                int newLeader = cluster.leader();
                assertNotEquals(leader, newLeader);
                assertTrue(rec.all.stream().noneMatch(e -> e.type() == LeaseEvent.Type.REMOVED), rec.all.toString());
                assertEquals(2, a.leases().size());
                System.out.printf("cluster: leader m%d killed; a lease acquired %.2f s later through m%d's cluster%n",
                        leader, joinedAfter, newLeader);
            }
        }
    }

    @Test
    void quorumLostAndRegainedIsReportedByTheWatch() throws Exception {
        cluster.etcdctl("put", "/coreos.com/network/config", "{\"Network\":\"100.96.0.0/16\"}");
        try (EtcdSubnetAllocator a = alloc()) {
            Lease held = a.acquire(node(1), null);
            EtcdSubnetAllocatorTest.Recorder rec = new EtcdSubnetAllocatorTest.Recorder();
            try (SubnetAllocator.Watch w = a.watch(rec)) {
                assertEquals(List.of(held.subnet()), rec.snapshot().stream().map(Lease::subnet).toList());
                int survivor = (cluster.leader() + 1) % 3;
                long lost = System.nanoTime();
                for (int m = 0; m < 3; m++) {
                    if (m != survivor) {
                        cluster.kill(m);
                    }
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (rec.errors.isEmpty()) {
                    assertTrue(System.nanoTime() < deadline, "no onError after losing quorum");
                    Thread.sleep(50);
                }
                double errorAfter = (System.nanoTime() - lost) / 1e9;
                assertTrue(rec.errors.get(0) instanceof OverlayException
                        && ((OverlayException) rec.errors.get(0)).kind() == Kind.STORE_UNAVAILABLE,
                        String.valueOf(rec.errors.get(0)));
                assertEquals(Kind.STORE_UNAVAILABLE,
                        org.junit.jupiter.api.Assertions.assertThrows(OverlayException.class, a::leases).kind());
                // The survivor may serve the watch again for a few election timeouts, until it notices the leader
                // is gone; only a resume after quorum is back counts.
                Thread.sleep(1000);
                assertEquals(Kind.STORE_UNAVAILABLE,
                        org.junit.jupiter.api.Assertions.assertThrows(OverlayException.class, a::leases).kind());
                int resumedWithoutQuorum = rec.resumed.get();

                cluster.start((survivor + 1) % 3);
                long back = System.nanoTime();
                deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (rec.resumed.get() == resumedWithoutQuorum) {
                    assertTrue(System.nanoTime() < deadline, "no onResumed after quorum came back");
                    Thread.sleep(50);
                }
                double resumedAfter = (System.nanoTime() - back) / 1e9;
                Lease renewed = a.renew(held);
                assertEquals(held.subnet(), renewed.subnet());
                assertTrue(rec.all.stream().noneMatch(e -> e.type() == LeaseEvent.Type.REMOVED), rec.all.toString());
                System.out.printf("cluster: quorum lost, watch error after %.2f s; one member back, watch resumed"
                        + " %.2f s later%n", errorAfter, resumedAfter);
            }
        }
    }
}
