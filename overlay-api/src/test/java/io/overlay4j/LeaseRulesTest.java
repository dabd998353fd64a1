package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.LeaseRules.Entry;
import io.overlay4j.LeaseRules.Plan;
import java.net.Inet4Address;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** flannel's subnet-picking and key rules as one pure function, without a store. */
class LeaseRulesTest {
    private static final NetworkConfig NETWORK = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\"}");
    private static final NetworkConfig TINY = NetworkConfig.parse("{\"Network\":\"10.5.0.0/28\"}");
    private static final Inet4Address ME = Ipv4Prefix.parseAddress("192.168.0.1");

    private static Entry lease(String subnet, String ip) {
        return new Entry(Ipv4Prefix.parse(subnet), LeaseAttributes.udp(Ipv4Prefix.parseAddress(ip)), false);
    }

    private static Entry reservation(String subnet, String ip) {
        return new Entry(Ipv4Prefix.parse(subnet), LeaseAttributes.udp(Ipv4Prefix.parseAddress(ip)), true);
    }

    private static Entry unreadable(String subnet) {
        return new Entry(Ipv4Prefix.parse(subnet), null, false);
    }

    @Test
    void reusesTheFirstFittingLeaseOfItsPublicIpOverThePreviousSubnet() {
        Entry other = lease("100.96.3.0/24", "192.168.0.2");
        Entry mine = lease("100.96.7.0/24", "192.168.0.1");
        Plan p = LeaseRules.plan(NETWORK, List.of(other, mine), ME, Ipv4Prefix.parse("100.96.9.0/24"));
        assertEquals(Plan.Action.REUSE, p.action());
        assertEquals(mine, p.reuse());
        assertEquals(mine.subnet(), p.subnet());
        assertEquals(List.of(), p.delete());
        assertEquals(List.of("reusing lease 100.96.7.0/24 of 192.168.0.1"), p.notes());
    }

    @Test
    void unfittingLeasesOfItsIpAreDeletedButReservationsKept() {
        Entry wrongLength = lease("100.96.5.0/25", "192.168.0.1");
        Entry belowMin = lease("100.96.0.0/24", "192.168.0.1");
        Entry reserved = reservation("100.96.6.0/25", "192.168.0.1");
        Plan p = LeaseRules.plan(NETWORK, List.of(belowMin, wrongLength, reserved), ME, null, new Random(1));
        assertEquals(Plan.Action.RANDOM, p.action());
        assertEquals(List.of(belowMin, wrongLength), p.delete());
        assertFalse(p.subnet().overlaps(reserved.subnet()), "a reservation of another length still blocks");
        assertTrue(LeaseRules.fits(NETWORK, p.subnet()));
        assertTrue(p.notes().get(2).startsWith("reservation 100.96.6.0/25 for 192.168.0.1 does not fit"),
                p.notes().toString());
    }

    @Test
    void previousSubnetWhenFreeAndFitting() {
        Ipv4Prefix previous = Ipv4Prefix.parse("100.96.77.0/24");
        Plan p = LeaseRules.plan(NETWORK, List.of(lease("100.96.3.0/24", "192.168.0.2")), ME, previous);
        assertEquals(Plan.Action.PREVIOUS, p.action());
        assertEquals(previous, p.subnet());

        for (Entry taker : List.of(lease("100.96.77.0/24", "192.168.0.2"), unreadable("100.96.77.0/24"),
                reservation("100.96.77.128/25", "192.168.0.3"))) {
            Plan taken = LeaseRules.plan(NETWORK, List.of(taker), ME, previous);
            assertEquals(Plan.Action.RANDOM, taken.action(), taker.toString());
            assertFalse(taken.subnet().overlaps(previous));
            assertEquals("previous subnet 100.96.77.0/24 is taken, allocating another", taken.notes().get(0));
        }
        for (String bad : List.of("100.96.0.0/24", "100.96.5.0/25", "100.97.5.0/24", "100.96.0.0/16")) {
            Plan ignored = LeaseRules.plan(NETWORK, List.of(), ME, Ipv4Prefix.parse(bad));
            assertEquals(Plan.Action.RANDOM, ignored.action(), bad);
            assertTrue(ignored.notes().get(0).endsWith("is not compatible with the network config, ignoring"));
        }
    }

    @Test
    void poisonedShortKeysDoNotBlockTheNetwork() {
        // 0.0.0.0-0 and the network itself overlap every subnet; flannel would call the network full.
        Plan p = LeaseRules.plan(TINY, List.of(lease("0.0.0.0/0", "192.168.0.9"), unreadable("10.5.0.0/28")), ME,
                null);
        assertEquals(Plan.Action.RANDOM, p.action());
        // A /32 inside a subnet blocks that subnet (harmless: a node holds it already), not the others.
        Plan q = LeaseRules.plan(TINY, List.of(lease("10.5.0.5/32", "192.168.0.9"), lease("10.5.0.8/30", "1.2.3.4")),
                ME, null);
        assertEquals(Ipv4Prefix.parse("10.5.0.12/30"), q.subnet());
    }

    @Test
    void freeCandidatesSkipTakenRangesAndThePickIsAmongTheFirst100() {
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"10.0.0.0/16\"}");
        List<Ipv4Prefix> taken = List.of(Ipv4Prefix.parse("10.0.3.0/24"), Ipv4Prefix.parse("10.0.0.0/20"),
                Ipv4Prefix.parse("10.0.17.128/25"), Ipv4Prefix.parse("10.0.20.0/23"));
        List<Ipv4Prefix> free = LeaseRules.freeCandidates(config, taken);
        assertEquals(100, free.size());
        assertEquals(List.of(Ipv4Prefix.parse("10.0.16.0/24"), Ipv4Prefix.parse("10.0.18.0/24"),
                Ipv4Prefix.parse("10.0.19.0/24"), Ipv4Prefix.parse("10.0.22.0/24")), free.subList(0, 4));
        assertEquals(Ipv4Prefix.parse("10.0.118.0/24"), free.get(99)); // 16, 18, 19, then 22..118
        List<Entry> entries = taken.stream().map(t -> new Entry(t, null, false)).toList();
        Set<Ipv4Prefix> picked = new HashSet<>();
        Random random = new Random(42);
        for (int i = 0; i < 2000; i++) {
            Plan p = LeaseRules.plan(config, entries, ME, null, random);
            assertTrue(free.contains(p.subnet()), p.toString());
            picked.add(p.subnet());
        }
        assertTrue(picked.size() > 50, "random among the candidates: " + picked.size());
        NetworkConfig narrow = NetworkConfig.parse("{\"Network\":\"10.0.0.0/16\",\"SubnetMin\":\"10.0.250.0\"}");
        assertEquals(6, LeaseRules.freeCandidates(narrow, taken).size());
    }

    @Test
    void exhaustedNamesTheNetworkAndItsSize() {
        Plan p = LeaseRules.plan(TINY, List.of(unreadable("10.5.0.4/30"), lease("10.5.0.8/30", "1.2.3.4"),
                reservation("10.5.0.12/30", "1.2.3.5")), ME, null);
        assertEquals(Plan.Action.EXHAUSTED, p.action());
        assertNull(p.subnet());
        OverlayException e = LeaseRules.exhausted(TINY);
        assertEquals(OverlayException.Kind.SUBNETS_EXHAUSTED, e.kind());
        assertEquals("network 10.5.0.0/28 has no free /30 subnet (3 subnets from 10.5.0.4 to 10.5.0.12, all taken)",
                e.getMessage());
        NetworkConfig inverted = NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"SubnetMin\":\"10.5.9.0\","
                + "\"SubnetMax\":\"10.5.8.0\"}");
        assertEquals(Plan.Action.EXHAUSTED, LeaseRules.plan(inverted, List.of(), ME, null).action());
    }

    @Test
    void checkRefusesPoisonedKeysAndPublicIps() {
        Instant exp = Instant.parse("2026-11-25T23:00:00Z");
        String[][] refused = {
            {"100.96.1.2/32", "10.168.0.9"},    // steals one container's traffic
            {"0.0.0.0/0", "10.168.0.9"},        // swallows everything
            {"100.96.0.0/16", "10.168.0.9"},    // the whole network
            {"100.96.0.0/24", "10.168.0.9"},    // below SubnetMin
            {"100.97.1.0/24", "10.168.0.9"},    // outside the network
            {"100.96.5.0/25", "10.168.0.9"},    // another length (a reservation would be refused the same way)
            {"100.96.3.0/24", "0.0.0.0"},       // value {}
            {"100.96.3.0/24", "127.0.0.1"},
            {"100.96.3.0/24", "224.0.0.5"},
            {"100.96.3.0/24", "255.255.255.255"},
            {"100.96.3.0/24", "100.96.2.1"},    // inside the overlay: would loop
        };
        for (String[] r : refused) {
            Lease l = new Lease(Ipv4Prefix.parse(r[0]), LeaseAttributes.udp(Ipv4Prefix.parseAddress(r[1])), exp);
            assertTrue(LeaseRules.check(NETWORK, l).isPresent(), r[0] + " " + r[1]);
        }
        for (String ip : List.of("10.168.0.9", "192.168.0.1", "169.254.7.1", "100.97.0.1", "8.8.8.8")) {
            Lease l = new Lease(Ipv4Prefix.parse("100.96.255.0/24"), LeaseAttributes.udp(Ipv4Prefix.parseAddress(ip)),
                    null);
            assertEquals("", LeaseRules.check(NETWORK, l).orElse(""), ip);
        }
        assertEquals("subnet 100.96.1.2/32 does not fit the network config (/24 from 100.96.1.0 to 100.96.255.0)",
                LeaseRules.check(NETWORK, new Lease(Ipv4Prefix.parse("100.96.1.2/32"), LeaseAttributes.udp(ME), exp))
                        .orElseThrow());
    }
}
