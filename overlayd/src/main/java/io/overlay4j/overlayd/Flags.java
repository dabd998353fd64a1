package io.overlay4j.overlayd;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * flanneld's command line as Go's {@code flag} package reads it, and its {@code FLANNELD_*} environment, for every flag
 * of flanneld v0.20.2 and of the newest release plus overlayd's own few.
 *
 * <p>Accepted forms, as Go's: {@code -flag}, {@code --flag} (booleans only), {@code -flag=value},
 * {@code --flag=value}, {@code -flag value}, {@code --flag value} (non-booleans only); {@code --} ends the flags.
 * A flag given on the command line wins over its variable; a repeatable flag ({@code -iface}, {@code -iface-regex})
 * collects every command-line occurrence, or takes the variable's one value when the command line has none (as
 * flanneld's {@code flagutil.SetFlagsFromEnv}). Empty variables are ignored, as there.
 */
final class Flags {

    /** What overlayd does with a flag. */
    enum Status {
        /** Does what flanneld does. */
        IMPLEMENTED,
        /** Mapped onto overlayd's equivalent (klog's {@code -v} onto the log level). */
        MAPPED,
        /** Accepted and without effect outside Kubernetes mode, as in flanneld; a warning says so when set. */
        KUBERNETES_ONLY,
        /** Accepted at its default; any other value is refused (exit 2) with the reason. */
        REFUSED,
        /** overlayd's own flag (no flanneld equivalent). */
        OVERLAYD
    }

    /** How a flag's value is read. */
    enum Kind {
        STRING, BOOL, INT, LIST
    }

    /**
     * One flag.
     *
     * @param name         the name without dashes, as flanneld's
     * @param kind         how its value parses
     * @param defaultValue the default as text ({@code ""} for none)
     * @param status       what overlayd does with it
     * @param help         one line of help
     * @param refusal      for {@link Status#REFUSED}: why a non-default value is refused
     */
    record Flag(String name, Kind kind, String defaultValue, Status status, String help, String refusal) {
        /** {@code FLANNELD_<NAME>}: upper case, dashes to underscores. */
        String env() {
            return envName(name);
        }
    }

    static final String KUBE = "Kubernetes mode is not supported yet (overlayd runs flanneld's etcd mode)";

    /** Every flag, in the order {@code --help} lists them. */
    static final List<Flag> ALL = List.of(
            f("etcd-endpoints", Kind.STRING, "http://127.0.0.1:4001,http://127.0.0.1:2379", Status.IMPLEMENTED,
                    "a comma-delimited list of etcd endpoints"),
            f("etcd-prefix", Kind.STRING, "/coreos.com/network", Status.IMPLEMENTED,
                    "etcd prefix (an absolute key path)"),
            f("etcd-keyfile", Kind.STRING, "", Status.IMPLEMENTED, "SSL key file used to secure etcd communication"),
            f("etcd-certfile", Kind.STRING, "", Status.IMPLEMENTED,
                    "SSL certification file used to secure etcd communication"),
            f("etcd-cafile", Kind.STRING, "", Status.IMPLEMENTED,
                    "SSL Certificate Authority file used to secure etcd communication"),
            f("etcd-username", Kind.STRING, "", Status.IMPLEMENTED, "username for BasicAuth to etcd"),
            f("etcd-password", Kind.STRING, "", Status.IMPLEMENTED, "password for BasicAuth to etcd"),
            f("iface", Kind.LIST, "", Status.IMPLEMENTED, "interface to use (IP or name) for inter-host "
                    + "communication; repeatable, checked in order, the first match wins"),
            f("iface-regex", Kind.LIST, "", Status.IMPLEMENTED, "regex matched against interface IPs, then names, "
                    + "after -iface; repeatable, the first match wins"),
            f("iface-can-reach", Kind.STRING, "", Status.IMPLEMENTED,
                    "use the interface of 'ip route get <this IP>' (after -iface and -iface-regex)"),
            f("subnet-file", Kind.STRING, "/run/flannel/subnet.env", Status.IMPLEMENTED,
                    "filename where env variables (subnet, MTU, ... ) will be written to"),
            f("public-ip", Kind.STRING, "", Status.IMPLEMENTED,
                    "IP accessible by other nodes for inter-host communication"),
            r("public-ipv6", Kind.STRING, "", "IPv6 accessible by other nodes for inter-host communication",
                    "IPv6 is not supported yet (overlayd runs IPv4 networks)"),
            f("subnet-lease-renew-margin", Kind.INT, "60", Status.IMPLEMENTED,
                    "subnet lease renewal margin, in minutes, ranging from 1 to 1439"),
            f("ip-masq", Kind.BOOL, "false", Status.IMPLEMENTED,
                    "setup IP masquerade rule for traffic destined outside of overlay network"),
            f("ip-masq-fully-random-disable", Kind.BOOL, "false", Status.IMPLEMENTED,
                    "disable fully-random mode for MASQUERADE"),
            f("iptables-resync", Kind.INT, "5", Status.IMPLEMENTED, "resync period for iptables rules, in seconds"),
            f("iptables-forward-rules", Kind.BOOL, "true", Status.IMPLEMENTED,
                    "add default accept rules to FORWARD chain in iptables"),
            f("ip-blackhole-route", Kind.BOOL, "false", Status.IMPLEMENTED,
                    "add a blackhole route on the node for the local subnet"),
            f("healthz-ip", Kind.STRING, "0.0.0.0", Status.IMPLEMENTED,
                    "the IP address for healthz server to listen"),
            f("healthz-port", Kind.INT, "0", Status.IMPLEMENTED,
                    "the port for healthz server to listen (0 to disable)"),
            r("kube-subnet-mgr", Kind.BOOL, "false",
                    "contact the Kubernetes API for subnet assignment instead of etcd", KUBE),
            f("kube-api-url", Kind.STRING, "", Status.KUBERNETES_ONLY, "Kubernetes API server URL"),
            f("kube-annotation-prefix", Kind.STRING, "flannel.alpha.coreos.com", Status.KUBERNETES_ONLY,
                    "Kubernetes annotation prefix"),
            f("kubeconfig-file", Kind.STRING, "", Status.KUBERNETES_ONLY, "kubeconfig file location"),
            f("net-config-path", Kind.STRING, "/etc/kube-flannel/net-conf.json", Status.KUBERNETES_ONLY,
                    "path to the network configuration file"),
            f("set-node-network-unavailable", Kind.BOOL, "true", Status.KUBERNETES_ONLY,
                    "set NodeNetworkUnavailable after ready"),
            f("v", Kind.INT, "0", Status.MAPPED,
                    "klog verbosity, mapped to the log level: 0 info, 1-3 debug, 4 and more trace"),
            r("vmodule", Kind.STRING, "", "klog's per-file verbosity",
                    "per-file log levels are klog's and not supported (use -v or -log-level)"),
            r("log_backtrace_at", Kind.STRING, "", "klog's stack trace at a file:line",
                    "stack traces at a log line are klog's and not supported"),
            f("log-level", Kind.STRING, "", Status.OVERLAYD,
                    "error, warn, info, debug or trace; wins over -v (default info)"),
            f("udp-offloads", Kind.BOOL, "", Status.OVERLAYD, "udp backend and vxlan's userspace data plane: TUN/UDP "
                    + "segmentation offloads (TSO, GSO, GRO); -udp-offloads=false turns them off (default: overlay4j's, "
                    + "on)"),
            f("vxlan-dataplane", Kind.STRING, "auto", Status.OVERLAYD, "vxlan backend: which data plane carries "
                    + "the traffic: kernel (the flannel.<VNI> device, as flanneld), userspace (overlay4j's TUN data "
                    + "plane speaking the same VXLAN), or auto: the kernel's, and userspace where the kernel cannot "
                    + "create vxlan devices (logged)"),
            f("version", Kind.BOOL, "false", Status.IMPLEMENTED, "print version and exit"),
            f("help", Kind.BOOL, "false", Status.IMPLEMENTED, "print this message and exit (also -h)"));

    private static final Map<String, Flag> BY_NAME = new LinkedHashMap<>();

    static {
        for (Flag flag : ALL) {
            BY_NAME.put(flag.name(), flag);
        }
    }

    private Flags() {
    }

    private static Flag f(String name, Kind kind, String def, Status status, String help) {
        return new Flag(name, kind, def, status, help, null);
    }

    private static Flag r(String name, Kind kind, String def, String help, String refusal) {
        return new Flag(name, kind, def, Status.REFUSED, help, refusal);
    }

    /** The flag of that name, or null. {@code h} is {@code help}, as Go's. */
    static Flag lookup(String name) {
        return BY_NAME.get("h".equals(name) ? "help" : name);
    }

    /** {@code FLANNELD_<NAME>} of a flag name. */
    static String envName(String name) {
        return "FLANNELD_" + name.toUpperCase(Locale.ROOT).replace('-', '_');
    }

    /**
     * Every flag's values: from the command line, else from its variable. Only flags given somewhere appear.
     *
     * @throws UsageException with Go's words for a syntax error, an unknown flag or a missing value
     */
    static Map<String, List<String>> parse(List<String> args, Map<String, String> env) {
        Map<String, List<String>> given = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            if (arg.equals("--")) {
                if (i + 1 < args.size()) {
                    throw new UsageException("unexpected argument '" + args.get(i + 1)
                            + "' (overlayd takes flags only)");
                }
                break;
            }
            if (arg.length() < 2 || arg.charAt(0) != '-') {
                throw new UsageException("unexpected argument '" + arg + "' (overlayd takes flags only)");
            }
            String name = arg.substring(arg.charAt(1) == '-' ? 2 : 1);
            if (name.isEmpty() || name.charAt(0) == '-' || name.charAt(0) == '=') {
                throw new UsageException("bad flag syntax: " + arg);
            }
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            Flag flag = lookup(name);
            if (flag == null) {
                throw new UsageException("flag provided but not defined: -" + name);
            }
            if (flag.kind() == Kind.BOOL) {
                if (value == null) {
                    value = "true";
                }
            } else if (value == null) {
                if (i + 1 >= args.size()) {
                    throw new UsageException("flag needs an argument: -" + name);
                }
                value = args.get(++i);
            }
            List<String> values = given.computeIfAbsent(flag.name(), k -> new ArrayList<>());
            if (flag.kind() != Kind.LIST) {
                values.clear();
            }
            values.add(value);
        }
        for (Flag flag : ALL) {
            if (given.containsKey(flag.name())) {
                continue;
            }
            String v = env.get(flag.env());
            if (v != null && !v.isEmpty()) {
                given.put(flag.name(), List.of(v));
            }
        }
        Map<String, List<String>> out = new LinkedHashMap<>();
        given.forEach((k, v) -> out.put(k, Collections.unmodifiableList(v)));
        return out;
    }

    /** Where a flag's value came from, for error messages: {@code -name} or {@code FLANNELD_NAME}. */
    static String source(String name, List<String> args) {
        for (String a : args) {
            String n = a.replaceFirst("^--?", "");
            int eq = n.indexOf('=');
            if (eq >= 0) {
                n = n.substring(0, eq);
            }
            if (a.startsWith("-") && (n.equals(name) || ("help".equals(name) && "h".equals(n)))) {
                return "flag -" + name;
            }
        }
        return envName(name);
    }

    /** {@code --help}: every flag with its variable, default and what overlayd does with it. */
    static String usage() {
        StringBuilder sb = new StringBuilder();
        sb.append("Usage: overlayd [OPTION]...\n");
        sb.append("overlayd is a drop-in for flanneld in etcd mode: it takes flanneld's flags, in Go's forms\n");
        sb.append("(-flag=value, --flag value, -flag for true), or each as the FLANNELD_* variable shown; a flag on\n");
        sb.append("the command line wins over its variable.\n\n");
        for (Flag flag : ALL) {
            sb.append("  -").append(flag.name());
            switch (flag.kind()) {
                case STRING -> sb.append(" string");
                case INT -> sb.append(" int");
                case LIST -> sb.append(" value");
                default -> { }
            }
            sb.append("   (").append(flag.env()).append(")\n");
            sb.append("        ").append(flag.help());
            if (!flag.defaultValue().isEmpty() && !"false".equals(flag.defaultValue())) {
                sb.append(flag.kind() == Kind.STRING ? " (default \"" + flag.defaultValue() + "\")"
                        : " (default " + flag.defaultValue() + ")");
            }
            sb.append('\n');
            switch (flag.status()) {
                case KUBERNETES_ONLY -> sb.append("        [accepted; no effect outside Kubernetes mode, as in "
                        + "flanneld]\n");
                case REFUSED -> sb.append("        [refused unless ").append(flag.defaultValue().isEmpty()
                        ? "empty" : flag.defaultValue()).append(": ").append(flag.refusal()).append("]\n");
                case OVERLAYD -> sb.append("        [overlayd only]\n");
                default -> { }
            }
        }
        return sb.toString();
    }
}
