package io.overlay4j.overlayd;

import io.overlay4j.Ipv4Prefix;
import java.io.IOException;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flanneld's nftables rules ({@code pkg/trafficmngr/nftables}, used when the config says
 * {@code "EnableNFTables": true}): tables {@code flannel-ipv4} and {@code flannel-ipv6}, a {@code postrtg} NAT chain
 * (hook postrouting, priority srcnat) and a {@code forward} filter chain (hook forward, priority filter), each flushed
 * and refilled in one {@code nft -f -} transaction. flanneld does not resync nftables rules; {@link #ensure} restores a
 * chain that was deleted or emptied.
 */
final class NftablesRules implements TrafficRules {
    private static final Logger log = LoggerFactory.getLogger(NftablesRules.class);
    static final String TABLE4 = "flannel-ipv4";
    static final String TABLE6 = "flannel-ipv6";

    private final Commands commands;
    private String masquerade;
    private String forward;

    private NftablesRules(Commands commands) {
        this.commands = commands;
    }

    /**
     * Checks that {@code nft} is installed and creates both tables, as flanneld's {@code Init}.
     *
     * @throws IOException naming what is missing or what nft said
     */
    static NftablesRules open(Commands commands) throws IOException {
        if (commands.find("nft").isEmpty()) {
            throw new IOException("the nft program is not installed (the network config says EnableNFTables; "
                    + "Debian: apt-get install nftables)");
        }
        NftablesRules rules = new NftablesRules(commands);
        rules.apply("add table ip " + TABLE4 + " { comment \"rules for " + TABLE4 + "\" ; }\n"
                + "add table ip6 " + TABLE6 + " { comment \"rules for " + TABLE6 + "\" ; }\n");
        return rules;
    }

    /** Whether the kernel takes {@code masquerade fully-random} (checked with {@code nft --check}). */
    boolean randomFullySupported() throws IOException {
        String test = "add chain ip " + TABLE4 + " masqueradeTest { type nat hook postrouting priority srcnat ; "
                + "comment \"chain to test if masquerade random fully is supported\" ; }\n"
                + "flush chain ip " + TABLE4 + " masqueradeTest\n"
                + "add rule ip " + TABLE4 + " masqueradeTest ip saddr != 127.0.0.1 masquerade fully-random\n";
        boolean ok = commands.run(List.of("nft", "--check", "-f", "-"), test).ok();
        if (!ok) {
            log.warn("nftables: masquerade fully-random is not supported");
        }
        return ok;
    }

    /** The transaction for flanneld's masquerade chain. */
    static String masqueradeTransaction(Ipv4Prefix n, Ipv4Prefix s, boolean randomFully) {
        String masq = randomFully ? "masquerade fully-random" : "masquerade";
        String t = "ip " + TABLE4 + " postrtg ";
        return "add chain " + t + "{ type nat hook postrouting priority srcnat ; "
                + "comment \"chain to manage traffic masquerading by flannel\" ; }\n"
                + "flush chain " + t + "\n"
                + "add rule " + t + "meta mark 0x4000 return\n"
                + "add rule " + t + "ip saddr " + s + " ip daddr " + n + " return\n"
                + "add rule " + t + "ip saddr " + n + " ip daddr " + s + " return\n"
                + "add rule " + t + "ip saddr != " + s + " ip daddr " + n + " return\n"
                + "add rule " + t + "ip saddr " + n + " ip daddr != 224.0.0.0/4 " + masq + "\n"
                + "add rule " + t + "ip saddr != " + n + " ip daddr " + n + " " + masq + "\n";
    }

    /** The transaction for flanneld's forward chain. */
    static String forwardTransaction(Ipv4Prefix n) {
        String t = "ip " + TABLE4 + " forward ";
        return "add chain " + t + "{ type filter hook forward priority filter ; "
                + "comment \"chain to accept flannel traffic\" ; }\n"
                + "flush chain " + t + "\n"
                + "add rule " + t + "ip saddr " + n + " accept\n"
                + "add rule " + t + "ip daddr " + n + " accept\n";
    }

    @Override
    public void cleanUpOther() {
        IptablesRules.deleteAll(commands);
    }

    @Override
    public synchronized void setupMasquerade(Ipv4Prefix network, Ipv4Prefix subnet, Ipv4Prefix previousNetwork,
                                             Ipv4Prefix previousSubnet, boolean fullyRandomDisabled)
            throws IOException {
        boolean randomFully = !fullyRandomDisabled && randomFullySupported();
        log.info("nftables: setting up masquerade rules for {} (subnet {}{})", network, subnet,
                randomFully ? ", fully-random" : "");
        masquerade = masqueradeTransaction(network, subnet, randomFully);
        apply(masquerade);
    }

    @Override
    public synchronized void setupForward(Ipv4Prefix network) throws IOException {
        log.info("nftables: setting up forward accept rules for {}", network);
        forward = forwardTransaction(network);
        apply(forward);
    }

    @Override
    public synchronized boolean ensure() throws IOException {
        boolean restored = false;
        for (String[] chain : new String[][] {{"postrtg", masquerade}, {"forward", forward}}) {
            if (chain[1] == null) {
                continue;
            }
            Commands.Result r = commands.run(List.of("nft", "list", "chain", "ip", TABLE4, chain[0]), null);
            long rules = r.stdout().lines().filter(l -> l.contains(" return") || l.contains(" accept")
                    || l.contains(" masquerade")).count();
            if (!r.ok() || rules < (chain[0].equals("postrtg") ? 6 : 2)) {
                log.info("nftables chain {} is missing or incomplete; recreating it", chain[0]);
                apply("add table ip " + TABLE4 + " { comment \"rules for " + TABLE4 + "\" ; }\n" + chain[1]);
                restored = true;
            }
        }
        return restored;
    }

    private void apply(String transaction) throws IOException {
        log.trace("nft -f - payload:\n{}", transaction);
        commands.check(List.of("nft", "-f", "-"), transaction);
    }

    /** Deletes flanneld's nftables tables (when the iptables manager takes over), if nft is installed. */
    static void deleteTables(Commands commands) {
        if (commands.find("nft").isEmpty()) {
            return;
        }
        for (String[] t : new String[][] {{"ip", TABLE4}, {"ip6", TABLE6}}) {
            try {
                if (commands.run(List.of("nft", "list", "table", t[0], t[1]), null).ok()) {
                    commands.check(List.of("nft", "delete", "table", t[0], t[1]), null);
                    log.info("removed nftables table {} {}", t[0], t[1]);
                }
            } catch (IOException e) {
                log.debug("could not delete nftables table {}: {}", t[1], e.toString());
            }
        }
    }
}
