package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * flanneld's rules installed for real, with the real iptables and nft programs, each test in a network namespace of its
 * own (netfilter state is per namespace): the exact iptables-save lines in flanneld's order, a deleted rule restored
 * in order, the previous run's rules removed when the subnet changed, nftables' tables and chains, each manager
 * removing the other's.
 */
class TrafficRulesKernelTest {
    private static final Ipv4Prefix N = Ipv4Prefix.parse("100.96.0.0/16");
    private static final Ipv4Prefix S = Ipv4Prefix.parse("100.96.1.0/24");

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4jr");

    private NetworkNamespace ns;
    private final Commands commands = new Commands();

    @BeforeEach
    void setUp() throws Exception {
        Requirements.requireBinary("iptables-restore");
        Requirements.requireBinary("iptables-save");
        Requirements.requireBinary("nft");
        ns = namespaces.createWithLoopback();
    }

    private String save(String table) throws Exception {
        return ns.call(() -> commands.check(List.of("iptables-save", "-t", table), null)).lines()
                .filter(l -> l.startsWith("-A ") || l.startsWith(":FLANNEL")).collect(Collectors.joining("\n"));
    }

    private static final String MASQ = String.join("\n",
            ":FLANNEL-POSTRTG - [0:0]",
            "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG",
            "-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN",
            "-A FLANNEL-POSTRTG -s 100.96.1.0/24 -d 100.96.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN",
            "-A FLANNEL-POSTRTG -s 100.96.0.0/16 -d 100.96.1.0/24 -m comment --comment \"flanneld masq\" -j RETURN",
            "-A FLANNEL-POSTRTG ! -s 100.96.0.0/16 -d 100.96.1.0/24 -m comment --comment \"flanneld masq\" -j RETURN",
            "-A FLANNEL-POSTRTG -s 100.96.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" "
                    + "-j MASQUERADE --random-fully",
            "-A FLANNEL-POSTRTG ! -s 100.96.0.0/16 -d 100.96.0.0/16 -m comment --comment \"flanneld masq\" "
                    + "-j MASQUERADE --random-fully");

    private static final String FORWARD = String.join("\n",
            ":FLANNEL-FWD - [0:0]",
            "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD",
            "-A FLANNEL-FWD -s 100.96.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT",
            "-A FLANNEL-FWD -d 100.96.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT");

    @Test
    void iptablesRulesAsFlanneldInstallsThemAndResync() throws Exception {
        IptablesRules rules = ns.call(() -> IptablesRules.open(commands));
        assertTrue(rules.randomFullySupported(), "iptables 1.8 supports --random-fully");
        // Someone else's rule in POSTROUTING and FORWARD first: flanneld's hooks are appended after them.
        ns.run(() -> {
            commands.check(List.of("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j",
                    "ACCEPT"), null);
            commands.check(List.of("iptables", "-P", "FORWARD", "DROP"), null);
            rules.setupMasquerade(N, S, null, null, false);
            rules.setupForward(N);
        });
        assertEquals(MASQ.replace(":FLANNEL-POSTRTG - [0:0]\n",
                ":FLANNEL-POSTRTG - [0:0]\n-A POSTROUTING -s 192.0.2.0/24 -j ACCEPT\n"), save("nat"));
        assertEquals(FORWARD, save("filter"));
        assertFalse(ns.call(rules::ensure), "nothing is missing");

        // Delete a rule in the middle and the hook by hand: the next resync restores all of them, in order.
        ns.run(() -> {
            commands.check(List.of("iptables", "-t", "nat", "-D", "FLANNEL-POSTRTG", "!", "-s", "100.96.0.0/16", "-d",
                    "100.96.1.0/24", "-m", "comment", "--comment", "flanneld masq", "-j", "RETURN"), null);
            commands.check(List.of("iptables", "-D", "FORWARD", "-m", "comment", "--comment", "flanneld forward",
                    "-j", "FLANNEL-FWD"), null);
        });
        assertTrue(ns.call(rules::ensure));
        String nat = save("nat");
        assertTrue(nat.contains(MASQ.substring(MASQ.indexOf("-A FLANNEL-POSTRTG"))), nat);
        assertEquals(FORWARD, save("filter"));
        assertFalse(ns.call(rules::ensure));

        // Setting up twice (a restart) leaves one copy of each rule.
        ns.run(() -> {
            rules.setupMasquerade(N, S, N, S, false);
            rules.setupForward(N);
        });
        assertEquals(1, count(save("nat"), "-j FLANNEL-POSTRTG"));
        assertEquals(FORWARD, save("filter"));
    }

    private static int count(String text, String needle) {
        return (int) text.lines().filter(l -> l.contains(needle)).count();
    }

    @Test
    void theOldRunsRulesGoWhenTheSubnetChanged() throws Exception {
        IptablesRules rules = ns.call(() -> IptablesRules.open(commands));
        Ipv4Prefix old = Ipv4Prefix.parse("100.96.9.0/24");
        ns.run(() -> rules.setupMasquerade(N, old, null, null, true));
        assertTrue(save("nat").contains("-d 100.96.9.0/24"));
        assertFalse(save("nat").contains("--random-fully"), "-ip-masq-fully-random-disable");
        IptablesRules again = ns.call(() -> IptablesRules.open(commands));
        ns.run(() -> again.setupMasquerade(N, S, N, old, false));
        String nat = save("nat");
        assertFalse(nat.contains("100.96.9.0/24"), nat);
        assertEquals(MASQ, nat);
    }

    @Test
    void nftablesTablesAndTheOtherManagersCleanUp() throws Exception {
        IptablesRules ipt = ns.call(() -> IptablesRules.open(commands));
        ns.run(() -> {
            ipt.setupMasquerade(N, S, null, null, false);
            ipt.setupForward(N);
        });
        NftablesRules nft = ns.call(() -> NftablesRules.open(commands));
        ns.run(() -> {
            nft.cleanUpOther();
            nft.setupMasquerade(N, S, null, null, false);
            nft.setupForward(N);
        });
        assertEquals("", save("nat"), "the iptables hooks and chains are gone");
        assertEquals("", save("filter"));
        String table = ns.call(() -> commands.check(List.of("nft", "list", "table", "ip", "flannel-ipv4"), null));
        for (String rule : List.of("type nat hook postrouting priority srcnat; policy accept;",
                "meta mark 0x00004000 return",
                "ip saddr 100.96.1.0/24 ip daddr 100.96.0.0/16 return",
                "ip saddr 100.96.0.0/16 ip daddr 100.96.1.0/24 return",
                "ip saddr != 100.96.1.0/24 ip daddr 100.96.0.0/16 return",
                "ip saddr 100.96.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
                "ip saddr != 100.96.0.0/16 ip daddr 100.96.0.0/16 masquerade fully-random",
                "type filter hook forward priority filter; policy accept;",
                "ip saddr 100.96.0.0/16 accept",
                "ip daddr 100.96.0.0/16 accept")) {
            assertTrue(table.contains(rule), rule + " in\n" + table);
        }
        assertTrue(ns.call(() -> commands.run(List.of("nft", "list", "table", "ip6", "flannel-ipv6"), null)).ok());
        // A chain flushed by hand comes back at the next resync.
        ns.run(() -> commands.check(List.of("nft", "flush", "chain", "ip", "flannel-ipv4", "postrtg"), null));
        assertTrue(ns.call(nft::ensure));
        assertFalse(ns.call(nft::ensure));

        // Back to iptables: its manager removes the nftables tables.
        ns.run(ipt::cleanUpOther);
        assertFalse(ns.call(() -> commands.run(List.of("nft", "list", "table", "ip", "flannel-ipv4"), null)).ok());
    }
}
