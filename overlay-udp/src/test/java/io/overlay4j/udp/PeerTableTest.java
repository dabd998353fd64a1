package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.PeerStats;
import io.overlay4j.udp.internal.PeerCounters;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class PeerTableTest {
    private static final Instant EXPIRY = Instant.parse("2026-11-26T00:00:00Z");

    static Lease lease(String subnet, int publicIp) {
        return new Lease(Ipv4Prefix.parse(subnet), LeaseAttributes.udp(Ipv4Prefix.fromInt(publicIp)), EXPIRY);
    }

    @Test
    void emptyMissesEverything() {
        PeerTable t = PeerTable.empty();
        assertEquals(0, t.size());
        assertNull(t.lookup(0));
        assertNull(t.lookup(-1));
        assertNull(t.lookup(addr(100, 96, 1, 2)));
        assertNull(PeerTable.builder().build().lookup(addr(10, 0, 0, 0)));
    }

    @Test
    void hitsMissesAndSubnetBoundaries() {
        PeerTable t = PeerTable.builder()
                .put(lease("100.96.1.0/24", addr(10, 168, 0, 2)), 8285)
                .put(lease("100.96.2.0/24", addr(10, 168, 0, 3)), 8285)
                .build();
        assertEquals(2, t.size());
        Peer p1 = t.lookup(addr(100, 96, 1, 0));
        assertEquals(Ipv4Prefix.parse("100.96.1.0/24"), p1.subnet());
        assertSame(p1, t.lookup(addr(100, 96, 1, 255)), "last address");
        assertSame(p1, t.lookup(addr(100, 96, 1, 77)));
        Peer p2 = t.lookup(addr(100, 96, 2, 3));
        assertEquals(new InetSocketAddress("10.168.0.3", 8285), p2.endpoint());
        assertSame(p2, t.lookup(addr(100, 96, 2, 0)), "first address");
        assertNull(t.lookup(addr(100, 96, 0, 255)), "just below");
        assertNull(t.lookup(addr(100, 96, 3, 0)), "just above");
        assertNull(t.lookup(addr(10, 168, 0, 2)));
        assertSame(p1, t.get(Ipv4Prefix.parse("100.96.1.0/24")));
        assertEquals(List.of(p1, p2), t.peers());
    }

    @Test
    void zeroAndTopOfTheAddressSpace() {
        PeerTable t = PeerTable.builder()
                .put(lease("0.0.0.0/24", addr(127, 0, 0, 2)), 1)
                .put(lease("255.255.255.0/24", addr(127, 0, 0, 3)), 65535)
                .build();
        assertEquals(1, t.lookup(0).endpoint().getPort());
        assertEquals(1, t.lookup(addr(0, 0, 0, 255)).endpoint().getPort());
        assertEquals(65535, t.lookup(-1).endpoint().getPort());
        assertNull(t.lookup(addr(0, 0, 1, 0)));
        assertNull(t.lookup(addr(255, 255, 254, 255)));
    }

    @Test
    void tenThousandPeers() {
        // 100.64.0.0/10 with /24 subnets: 10,000 of them, every address of a few checked against Ipv4Prefix.contains.
        PeerTable.Builder b = PeerTable.builder();
        List<Ipv4Prefix> subnets = new ArrayList<>();
        for (int i = 0; i < 10_000; i++) {
            Ipv4Prefix s = Ipv4Prefix.of(addr(100, 64, 0, 0) + (i << 8), 24);
            subnets.add(s);
            b.put(new Lease(s, LeaseAttributes.udp(Ipv4Prefix.fromInt(addr(10, i >>> 16 & 0xff, i >>> 8 & 0xff,
                    i & 0xff))), EXPIRY), 8285);
        }
        PeerTable t = b.build();
        assertEquals(10_000, t.size());
        for (int i = 0; i < subnets.size(); i++) {
            Ipv4Prefix s = subnets.get(i);
            Peer first = t.lookup(s.networkInt());
            assertEquals(s, first.subnet());
            assertSame(first, t.lookup(s.networkInt() + 255));
            assertEquals(addr(10, i >>> 16 & 0xff, i >>> 8 & 0xff, i & 0xff),
                    Ipv4Prefix.toInt((java.net.Inet4Address) first.endpoint().getAddress()));
        }
        assertNull(t.lookup(addr(100, 64, 0, 0) + (10_000 << 8)), "first unused subnet");
        assertNull(t.lookup(addr(100, 63, 255, 255)));
        int base = addr(100, 64, 0, 0);
        int span = 10_000 << 8;
        Random random = new Random(42);
        int hits = 0;
        for (int n = 0; n < 200_000; n++) {
            // Half the probes near the used range, half anywhere.
            int a = n % 2 == 0 ? base - 4096 + random.nextInt(span + 8192) : random.nextInt();
            Peer p = t.lookup(a);
            if (Integer.compareUnsigned(a - base, span) < 0) {
                assertEquals(Ipv4Prefix.of(a, 24), p.subnet(), () -> Ipv4Prefix.fromInt(a).toString());
                hits++;
            } else {
                assertNull(p, () -> Ipv4Prefix.fromInt(a).toString());
            }
        }
        assertTrue(hits > 20_000);
    }

    @Test
    void longestPrefixWinsAcrossLengths() {
        PeerTable t = PeerTable.builder()
                .put(lease("10.5.1.0/24", addr(192, 0, 2, 1)), 8285)
                .put(lease("10.5.2.0/24", addr(192, 0, 2, 2)), 8285)
                .put(lease("10.5.3.0/24", addr(192, 0, 2, 3)), 8285)
                .put(lease("10.5.2.128/26", addr(192, 0, 2, 4)), 8285)  // longer, inside a primary subnet
                .put(lease("10.5.2.130/32", addr(192, 0, 2, 5)), 8285)  // longer still
                .put(lease("10.6.0.0/16", addr(192, 0, 2, 6)), 8285)    // shorter, disjoint
                .put(lease("10.0.0.0/8", addr(192, 0, 2, 7)), 8285)     // shortest, covers everything
                .build();
        assertEquals(addr(192, 0, 2, 1), ip(t.lookup(addr(10, 5, 1, 9))));
        assertEquals(addr(192, 0, 2, 2), ip(t.lookup(addr(10, 5, 2, 127))));
        assertEquals(addr(192, 0, 2, 4), ip(t.lookup(addr(10, 5, 2, 128))));
        assertEquals(addr(192, 0, 2, 5), ip(t.lookup(addr(10, 5, 2, 130))));
        assertEquals(addr(192, 0, 2, 4), ip(t.lookup(addr(10, 5, 2, 191))));
        assertEquals(addr(192, 0, 2, 2), ip(t.lookup(addr(10, 5, 2, 192))));
        assertEquals(addr(192, 0, 2, 6), ip(t.lookup(addr(10, 6, 200, 1))));
        assertEquals(addr(192, 0, 2, 7), ip(t.lookup(addr(10, 5, 4, 1))));
        assertEquals(addr(192, 0, 2, 7), ip(t.lookup(addr(10, 255, 255, 255))));
        assertNull(t.lookup(addr(11, 0, 0, 0)));
    }

    @Test
    void onlyOtherLengthsStillWork() {
        PeerTable t = PeerTable.builder()
                .put(lease("10.5.0.0/16", addr(192, 0, 2, 1)), 8285)
                .put(lease("10.5.7.0/24", addr(192, 0, 2, 2)), 8285)
                .build();
        assertEquals(addr(192, 0, 2, 2), ip(t.lookup(addr(10, 5, 7, 1))));
        assertEquals(addr(192, 0, 2, 1), ip(t.lookup(addr(10, 5, 8, 1))));
        assertNull(t.lookup(addr(10, 4, 0, 0)));
    }

    @Test
    void replaceAndRemove() {
        PeerTable t1 = PeerTable.builder()
                .put(lease("10.5.1.0/24", addr(192, 0, 2, 1)), 8285)
                .put(lease("10.5.2.0/24", addr(192, 0, 2, 2)), 8285)
                .build();
        PeerTable t2 = t1.toBuilder()
                .put(lease("10.5.1.0/24", addr(192, 0, 2, 9)), 8285)
                .remove(Ipv4Prefix.parse("10.5.2.0/24"))
                .remove(Ipv4Prefix.parse("10.5.77.0/24"))
                .build();
        assertEquals(addr(192, 0, 2, 9), ip(t2.lookup(addr(10, 5, 1, 1))));
        assertNull(t2.lookup(addr(10, 5, 2, 1)));
        assertEquals(1, t2.size());
        assertEquals(addr(192, 0, 2, 1), ip(t1.lookup(addr(10, 5, 1, 1))), "the old snapshot is unchanged");
        assertEquals(addr(192, 0, 2, 2), ip(t1.lookup(addr(10, 5, 2, 1))));
        assertEquals(0, t2.toBuilder().clear().build().size());
    }

    @Test
    void applyEventsKeepsEndpointsOfRenewedPeers() {
        Lease a = lease("10.5.1.0/24", addr(192, 0, 2, 1));
        Lease b = lease("10.5.2.0/24", addr(192, 0, 2, 2));
        PeerTable t1 = PeerTable.of(List.of(a, b), 8285);
        Lease renewed = new Lease(a.subnet(), a.attributes(), EXPIRY.plusSeconds(3600));
        Lease moved = lease("10.5.2.0/24", addr(192, 0, 2, 22));
        PeerTable t2 = t1.apply(List.of(LeaseEvent.added(renewed), LeaseEvent.added(moved),
                LeaseEvent.added(lease("10.5.3.0/24", addr(192, 0, 2, 3))),
                LeaseEvent.removed(lease("10.5.9.0/24", addr(192, 0, 2, 9)))), 8285);
        assertEquals(3, t2.size());
        Peer pa = t2.lookup(addr(10, 5, 1, 1));
        assertSame(t1.lookup(addr(10, 5, 1, 1)).endpoint(), pa.endpoint(), "renewal reuses the endpoint");
        assertEquals(renewed, pa.lease());
        assertNotSame(t1.lookup(addr(10, 5, 2, 1)).endpoint(), t2.lookup(addr(10, 5, 2, 1)).endpoint());
        assertEquals(addr(192, 0, 2, 22), ip(t2.lookup(addr(10, 5, 2, 1))));
        PeerTable t3 = t2.apply(List.of(LeaseEvent.removed(b), LeaseEvent.removed(a)), 8285);
        assertEquals(1, t3.size());
        assertNull(t3.lookup(addr(10, 5, 1, 1)));
        assertEquals(addr(192, 0, 2, 3), ip(t3.lookup(addr(10, 5, 3, 3))));
    }

    @Test
    void rejectsBadPorts() {
        Lease a = lease("10.5.1.0/24", addr(192, 0, 2, 1));
        assertThrows(IllegalArgumentException.class, () -> PeerTable.builder().put(a, 0));
        assertThrows(IllegalArgumentException.class, () -> PeerTable.builder().put(a, 65536));
    }

    @Test
    void endpointsAreResolvedAndToStringIsReadable() {
        Peer p = Peer.of(lease("10.5.1.0/24", addr(10, 168, 0, 2)), 8285);
        assertTrue(!p.endpoint().isUnresolved());
        assertEquals("10.5.1.0/24 -> 10.168.0.2:8285", p.toString());
    }

    @Test
    void sendersAreFoundByAddressAndPortAndOwnTheirSubnetsOnly() {
        PeerTable t = PeerTable.builder()
                .put(lease("100.96.1.0/24", addr(10, 168, 0, 2)), 8285)
                .put(lease("100.96.2.0/24", addr(10, 168, 0, 3)), 8285)
                .put(lease("100.96.7.0/24", addr(10, 168, 0, 3)), 8285) // a second lease of the same host
                .build();
        assertEquals(-1, t.senderIndex(addr(10, 168, 0, 9), 8285, true), "no lease");
        assertEquals(-1, t.senderIndex(addr(10, 168, 0, 3), 9999, true), "another port");
        int s3 = t.senderIndex(addr(10, 168, 0, 3), 9999, false);
        assertTrue(s3 >= 0, "any port where the encapsulation does not fix it");
        assertEquals(s3, t.senderIndex(addr(10, 168, 0, 3), 8285, true));
        assertTrue(t.senderOwnsSource(s3, addr(100, 96, 2, 9)));
        assertTrue(t.senderOwnsSource(s3, addr(100, 96, 7, 1)), "its second lease");
        assertFalse(t.senderOwnsSource(s3, addr(100, 96, 1, 9)), "another host's subnet");
        assertFalse(t.senderOwnsSource(s3, addr(192, 168, 0, 1)));
        int s2 = t.senderIndex(addr(10, 168, 0, 2), 8285, true);
        assertTrue(t.senderOwnsSource(s2, addr(100, 96, 1, 1)));
        assertFalse(t.senderOwnsSource(s2, addr(100, 96, 2, 1)));
        assertEquals(-1, PeerTable.empty().senderIndex(addr(10, 168, 0, 2), 8285, false));
        // Many hosts: every one found, none confused.
        PeerTable.Builder b = PeerTable.builder();
        for (int i = 0; i < 3000; i++) {
            b.put(lease("10." + (i >> 8) + "." + (i & 255) + ".0/24", addr(172, 16, i >> 8, i & 255)), 8285);
        }
        PeerTable big = b.build();
        for (int i = 0; i < 3000; i++) {
            int s = big.senderIndex(addr(172, 16, i >> 8, i & 255), 8285, true);
            assertTrue(big.senderOwnsSource(s, addr(10, i >> 8, i & 255, 9)), "host " + i);
            assertFalse(big.senderOwnsSource(s, addr(10, (i + 1) >> 8, (i + 1) & 255, 9)), "host " + i);
        }
    }

    private static int ip(Peer p) {
        return Ipv4Prefix.toInt((java.net.Inet4Address) p.endpoint().getAddress());
    }
    /** The counters belong to the subnet: renewals, new attributes and resyncs keep them; leaving restarts them. */
    @Test
    void countersFollowTheSubnetThroughRebuilds() {
        PeerTable t = PeerTable.builder()
                .put(lease("100.96.1.0/24", addr(10, 168, 0, 2)), 8285)
                .put(lease("100.96.2.0/24", addr(10, 168, 0, 3)), 8285)
                .build();
        Ipv4Prefix s1 = Ipv4Prefix.parse("100.96.1.0/24");
        Ipv4Prefix s2 = Ipv4Prefix.parse("100.96.2.0/24");
        PeerCounters.of(t.get(s1)).sent(100);
        PeerCounters.of(t.get(s1)).received(60, 1_700_000_000_123L);
        PeerCounters.of(t.get(s2)).sent(3, 300);
        assertEquals(new PeerStats(s1, 1, 100, 1, 60, Instant.ofEpochMilli(1_700_000_000_123L)), t.get(s1).stats());
        assertEquals(new PeerStats(s2, 3, 300, 0, 0, null), t.get(s2).stats());

        Lease renewed = new Lease(s1, LeaseAttributes.udp(Ipv4Prefix.fromInt(addr(10, 168, 0, 2))),
                EXPIRY.plusSeconds(3600));
        PeerTable t2 = t.apply(List.of(LeaseEvent.added(renewed)), 8285);
        assertNotSame(t.get(s1), t2.get(s1));
        PeerCounters.of(t2.get(s1)).sent(50);
        assertEquals(2, t.get(s1).stats().egressPackets(), "one object counts for both tables' peers");
        assertEquals(150, t2.get(s1).stats().egressBytes());

        PeerTable moved = t2.apply(List.of(LeaseEvent.added(lease("100.96.1.0/24", addr(10, 168, 0, 9)))), 8285);
        assertEquals(new InetSocketAddress("10.168.0.9", 8285), moved.get(s1).endpoint());
        assertEquals(2, moved.get(s1).stats().egressPackets(), "a new public address keeps the counters");

        PeerTable resync = moved.toBuilder().clear().put(lease("100.96.2.0/24", addr(10, 168, 0, 3)), 8285)
                .put(lease("100.96.1.0/24", addr(10, 168, 0, 9)), 8285).build();
        assertEquals(2, resync.get(s1).stats().egressPackets(), "a resync keeps the counters");
        assertEquals(3, resync.get(s2).stats().egressPackets());
        assertSame(moved.get(s1).endpoint(), resync.get(s1).endpoint(), "and the endpoint of an unchanged lease");

        PeerTable back = resync.apply(List.of(LeaseEvent.removed(renewed), LeaseEvent.added(renewed)), 8285);
        assertEquals(new PeerStats(s1, 0, 0, 0, 0, null), back.get(s1).stats(), "left and came back: restarted");
        PeerTable cleared = resync.toBuilder().clear().remove(s2).put(lease("100.96.2.0/24", addr(10, 168, 0, 3)),
                8285).build();
        assertEquals(0, cleared.get(s2).stats().egressPackets(), "removed after clear(): restarted");
        PeerTable fresh = PeerTable.of(List.of(renewed), 8285);
        assertEquals(0, fresh.get(s1).stats().egressPackets(), "a table built from scratch starts from zero");
    }

    @Test
    void sourcePeerNamesTheLeaseThatOwnsTheSource() {
        PeerTable t = PeerTable.builder()
                .put(lease("100.96.1.0/24", addr(10, 168, 0, 2)), 8285)
                .put(lease("100.96.2.0/24", addr(10, 168, 0, 3)), 8285)
                .put(lease("100.96.7.0/24", addr(10, 168, 0, 3)), 8285)
                .build();
        int sender = t.senderIndex(addr(10, 168, 0, 3), 8285, true);
        assertSame(t.get(Ipv4Prefix.parse("100.96.2.0/24")), t.sourcePeer(sender, addr(100, 96, 2, 9)));
        assertSame(t.get(Ipv4Prefix.parse("100.96.7.0/24")), t.sourcePeer(sender, addr(100, 96, 7, 1)));
        assertNull(t.sourcePeer(sender, addr(100, 96, 1, 9)), "another host's subnet");
    }
}
