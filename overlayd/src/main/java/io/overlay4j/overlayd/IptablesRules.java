package io.overlay4j.overlayd;

import io.overlay4j.Ipv4Prefix;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flanneld's iptables rules, newest layout ({@code pkg/trafficmngr/iptables/iptables.go} of v0.28): with N the network
 * and S our subnet, every rule commented {@code flanneld masq} or {@code flanneld forward},
 * <pre>
 * -t nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
 * -t nat -A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -j RETURN
 * -t nat -A FLANNEL-POSTRTG -s S -d N -j RETURN
 * -t nat -A FLANNEL-POSTRTG -s N -d S -j RETURN
 * -t nat -A FLANNEL-POSTRTG ! -s N -d S -j RETURN
 * -t nat -A FLANNEL-POSTRTG -s N ! -d 224.0.0.0/4 -j MASQUERADE [--random-fully]
 * -t nat -A FLANNEL-POSTRTG ! -s N -d N -j MASQUERADE [--random-fully]
 * -t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
 * -t filter -A FLANNEL-FWD -s N -j ACCEPT
 * -t filter -A FLANNEL-FWD -d N -j ACCEPT
 * </pre>
 * installed as flanneld does: the chain emptied, copies of a rule that already exist deleted and every rule appended,
 * in one {@code iptables-restore --noflush} transaction so the order holds. {@link #ensure} reads
 * {@code iptables-save} (one call per table instead of flanneld's {@code iptables -C} per rule) and restores the set
 * when a rule is missing.
 */
final class IptablesRules implements TrafficRules {
    private static final Logger log = LoggerFactory.getLogger(IptablesRules.class);
    static final String POSTRTG = "FLANNEL-POSTRTG";
    static final String FWD = "FLANNEL-FWD";
    static final String MASQ_COMMENT = "flanneld masq";
    static final String FORWARD_COMMENT = "flanneld forward";
    private static final Pattern VERSION = Pattern.compile("v(\\d+)\\.(\\d+)\\.(\\d+)");

    /**
     * One rule as {@code iptables-save} prints it.
     *
     * @param table the table ({@code nat}, {@code filter})
     * @param chain the chain it is appended to
     * @param spec  the rule after {@code -A <chain>}, as {@code iptables-save} prints it (comments quoted)
     */
    record Rule(String table, String chain, String spec) {
        String saveLine() {
            return "-A " + chain + " " + spec;
        }

        /** The user chain this rule lives in or jumps to. */
        String ownChain() {
            return chain.startsWith("FLANNEL-") ? chain : spec.substring(spec.lastIndexOf(' ') + 1);
        }
    }

    private final Commands commands;
    private final boolean randomFullySupported;
    private final boolean restoreWaits;
    private final List<Rule> installed = new ArrayList<>();

    private IptablesRules(Commands commands, boolean randomFullySupported, boolean restoreWaits) {
        this.commands = commands;
        this.randomFullySupported = randomFullySupported;
        this.restoreWaits = restoreWaits;
    }

    /**
     * Checks that {@code iptables}, {@code iptables-save} and {@code iptables-restore} are installed and reads the
     * version (for {@code --random-fully} and {@code --wait}, both from 1.6.2, as go-iptables decides).
     *
     * @throws IOException naming what is missing
     */
    static IptablesRules open(Commands commands) throws IOException {
        List<String> missing = new ArrayList<>();
        for (String b : List.of("iptables", "iptables-save", "iptables-restore")) {
            if (commands.find(b).isEmpty()) {
                missing.add(b);
            }
        }
        if (!missing.isEmpty()) {
            throw new IOException("the iptables programs are not installed (" + String.join(", ", missing)
                    + " missing; Debian: apt-get install iptables)");
        }
        Commands.Result v = commands.run(List.of("iptables", "--version"), null);
        Matcher m = VERSION.matcher(v.stdout() + v.stderr());
        boolean atLeast162 = false;
        if (m.find()) {
            int a = Integer.parseInt(m.group(1));
            int b = Integer.parseInt(m.group(2));
            int c = Integer.parseInt(m.group(3));
            atLeast162 = a > 1 || (a == 1 && (b > 6 || (b == 6 && c >= 2)));
        }
        return new IptablesRules(commands, atLeast162, atLeast162);
    }

    boolean randomFullySupported() {
        return randomFullySupported;
    }

    /** flanneld's masquerade rules for network {@code n} and subnet {@code s}. */
    static List<Rule> masqueradeRules(Ipv4Prefix n, Ipv4Prefix s, boolean randomFully) {
        String c = "-m comment --comment \"" + MASQ_COMMENT + "\"";
        String masq = randomFully ? "-j MASQUERADE --random-fully" : "-j MASQUERADE";
        return List.of(
                new Rule("nat", "POSTROUTING", c + " -j " + POSTRTG),
                new Rule("nat", POSTRTG, "-m mark --mark 0x4000/0x4000 " + c + " -j RETURN"),
                new Rule("nat", POSTRTG, "-s " + s + " -d " + n + " " + c + " -j RETURN"),
                new Rule("nat", POSTRTG, "-s " + n + " -d " + s + " " + c + " -j RETURN"),
                new Rule("nat", POSTRTG, "! -s " + n + " -d " + s + " " + c + " -j RETURN"),
                new Rule("nat", POSTRTG, "-s " + n + " ! -d 224.0.0.0/4 " + c + " " + masq),
                new Rule("nat", POSTRTG, "! -s " + n + " -d " + n + " " + c + " " + masq));
    }

    /** flanneld's FORWARD rules for network {@code n}. */
    static List<Rule> forwardRules(Ipv4Prefix n) {
        String c = "-m comment --comment \"" + FORWARD_COMMENT + "\"";
        return List.of(
                new Rule("filter", "FORWARD", c + " -j " + FWD),
                new Rule("filter", FWD, "-s " + n + " " + c + " -j ACCEPT"),
                new Rule("filter", FWD, "-d " + n + " " + c + " -j ACCEPT"));
    }

    @Override
    public void cleanUpOther() {
        NftablesRules.deleteTables(commands);
    }

    @Override
    public synchronized void setupMasquerade(Ipv4Prefix network, Ipv4Prefix subnet, Ipv4Prefix previousNetwork,
                                             Ipv4Prefix previousSubnet, boolean fullyRandomDisabled)
            throws IOException {
        boolean randomFully = randomFullySupported && !fullyRandomDisabled;
        if (previousNetwork != null && previousSubnet != null
                && (!network.equals(previousNetwork) || !subnet.equals(previousSubnet))) {
            log.info("network or subnet ({}, {}) differ from the previous run's ({}, {}): removing its masquerade "
                    + "rules", network, subnet, previousNetwork, previousSubnet);
            List<Rule> old = new ArrayList<>(masqueradeRules(previousNetwork, previousSubnet, true));
            old.addAll(masqueradeRules(previousNetwork, previousSubnet, false).subList(5, 7));
            delete(old);
        }
        log.info("setting up masquerade rules for {} (subnet {}{})", network, subnet,
                randomFully ? ", --random-fully" : "");
        List<Rule> rules = masqueradeRules(network, subnet, randomFully);
        bootstrap(rules, true);
        installed.addAll(rules);
    }

    @Override
    public synchronized void setupForward(Ipv4Prefix network) throws IOException {
        log.info("setting up FORWARD accept rules for {}", network);
        List<Rule> rules = forwardRules(network);
        bootstrap(rules, true);
        installed.addAll(rules);
    }

    @Override
    public synchronized boolean ensure() throws IOException {
        if (installed.isEmpty()) {
            return false;
        }
        Map<String, Saved> saved = save(installed);
        for (Rule r : installed) {
            Saved t = saved.get(r.table());
            if (!t.chains.contains(r.ownChain()) || !t.rules.containsKey(r.saveLine())) {
                log.info("some iptables rules are missing; deleting and recreating rules");
                bootstrap(installed, false);
                return true;
            }
        }
        return false;
    }

    /** The rules as {@code iptables-save} lists them, with their chains, per table. */
    static final class Saved {
        final List<String> chains = new ArrayList<>();
        /** save line to count of copies. */
        final Map<String, Integer> rules = new HashMap<>();
    }

    private Map<String, Saved> save(List<Rule> rules) throws IOException {
        Map<String, Saved> out = new HashMap<>();
        for (Rule r : rules) {
            if (out.containsKey(r.table())) {
                continue;
            }
            Saved s = new Saved();
            for (String line : commands.check(List.of("iptables-save", "-t", r.table()), null).split("\n")) {
                if (line.startsWith(":")) {
                    s.chains.add(line.substring(1, line.indexOf(' ') > 0 ? line.indexOf(' ') : line.length()));
                } else if (line.startsWith("-A ")) {
                    s.rules.merge(line.strip(), 1, Integer::sum);
                }
            }
            out.put(r.table(), s);
        }
        return out;
    }

    /**
     * One {@code iptables-restore --noflush} transaction: create missing chains (or empty ours when {@code clear}),
     * delete every existing copy of each rule, then append them all in order.
     */
    private void bootstrap(List<Rule> rules, boolean clear) throws IOException {
        Map<String, Saved> saved = save(rules);
        Map<String, List<String>> payload = new LinkedHashMap<>();
        java.util.Set<String> prepared = new java.util.HashSet<>();
        for (Rule r : rules) {
            Saved s = saved.get(r.table());
            List<String> lines = payload.computeIfAbsent(r.table(), k -> new ArrayList<>());
            String own = r.ownChain();
            if (prepared.add(r.table() + " " + own)) {
                if (!s.chains.contains(own)) {
                    lines.add(0, ":" + own + " - [0:0]");
                } else if (clear) {
                    lines.add(0, "-F " + own);
                    s.rules.keySet().removeIf(l -> l.startsWith("-A " + own + " "));
                }
            }
            int copies = s.rules.getOrDefault(r.saveLine(), 0);
            for (int i = 0; i < copies; i++) {
                lines.add("-D " + r.chain() + " " + r.spec());
            }
            s.rules.remove(r.saveLine());
            lines.add("-A " + r.chain() + " " + r.spec());
        }
        restore(payload);
    }

    private void delete(List<Rule> rules) throws IOException {
        Map<String, Saved> saved = save(rules);
        Map<String, List<String>> payload = new LinkedHashMap<>();
        for (Rule r : rules) {
            int copies = saved.get(r.table()).rules.getOrDefault(r.saveLine(), 0);
            for (int i = 0; i < copies; i++) {
                payload.computeIfAbsent(r.table(), k -> new ArrayList<>()).add("-D " + r.chain() + " " + r.spec());
            }
            saved.get(r.table()).rules.remove(r.saveLine());
        }
        restore(payload);
    }

    private void restore(Map<String, List<String>> payload) throws IOException {
        if (payload.isEmpty()) {
            return;
        }
        StringBuilder sb = new StringBuilder();
        payload.forEach((table, lines) -> {
            sb.append('*').append(table).append('\n');
            lines.forEach(l -> sb.append(l).append('\n'));
            sb.append("COMMIT\n");
        });
        List<String> cmd = new ArrayList<>(List.of("iptables-restore", "--noflush"));
        if (restoreWaits) {
            cmd.add("--wait");
        }
        log.trace("iptables-restore payload:\n{}", sb);
        commands.check(cmd, sb.toString());
    }

    /**
     * Removes flanneld's iptables hooks and chains (when the nftables manager takes over), if iptables is installed.
     */
    static void deleteAll(Commands commands) {
        if (commands.find("iptables").isEmpty()) {
            return;
        }
        String[][] hooks = {{"nat", "POSTROUTING", POSTRTG, MASQ_COMMENT}, {"filter", "FORWARD", FWD, FORWARD_COMMENT}};
        for (String[] h : hooks) {
            try {
                String spec = "-m comment --comment \"" + h[3] + "\" -j " + h[2];
                while (commands.run(List.of("iptables", "-t", h[0], "-C", h[1], "-m", "comment", "--comment", h[3],
                        "-j", h[2]), null).ok()) {
                    commands.check(List.of("iptables", "-t", h[0], "-D", h[1], "-m", "comment", "--comment", h[3],
                            "-j", h[2]), null);
                    log.debug("removed {} {}", h[1], spec);
                }
                if (commands.run(List.of("iptables", "-t", h[0], "-F", h[2]), null).ok()) {
                    commands.run(List.of("iptables", "-t", h[0], "-X", h[2]), null);
                    log.info("removed iptables chain {} (table {})", h[2], h[0]);
                }
            } catch (IOException e) {
                log.debug("could not clean up iptables chain {}: {}", h[2], e.toString());
            }
        }
    }
}
