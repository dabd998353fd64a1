package io.overlay4j.overlayd;

import com.google.common.net.InetAddresses;
import io.overlay4j.overlayd.Flags.Flag;
import io.overlay4j.overlayd.Flags.Kind;
import io.overlay4j.overlayd.Flags.Status;
import io.overlay4j.vxlan.VxlanBackend;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * overlayd's settings, read from flanneld's flags and {@code FLANNELD_*} variables by {@link #parse}, every value
 * checked there: a bad value is a {@link UsageException} naming the flag (or variable) and why.
 */
final class Options {
    List<String> etcdEndpoints = List.of("http://127.0.0.1:4001", "http://127.0.0.1:2379");
    String etcdPrefix = "/coreos.com/network";
    String etcdKeyFile = "";
    String etcdCertFile = "";
    String etcdCaFile = "";
    String etcdUsername = "";
    String etcdPassword = "";
    List<String> ifaces = List.of();
    List<Pattern> ifaceRegexes = List.of();
    Inet4Address ifaceCanReach;
    Path subnetFile = Path.of("/run/flannel/subnet.env");
    Inet4Address publicIp;
    int renewMarginMinutes = 60;
    boolean ipMasq;
    boolean ipMasqFullyRandomDisable;
    int iptablesResyncSeconds = 5;
    boolean iptablesForwardRules = true;
    boolean blackholeRoute;
    String healthzIp = "0.0.0.0";
    int healthzPort;
    /** slf4j-simple's level name: error, warn, info, debug, trace. */
    String logLevel = "info";
    /** null: the udp backend's default. */
    Boolean udpOffloads;
    /** auto: the kernel's, and the userspace one where the kernel cannot create vxlan devices. */
    VxlanBackend.DataPlane vxlanDataPlane = VxlanBackend.DataPlane.AUTO;
    boolean version;
    boolean help;
    /** Kubernetes-only flags that were set (they have no effect; the daemon warns). */
    List<String> kubernetesOnly = new ArrayList<>();

    /**
     * Reads the command line and the environment.
     *
     * @throws UsageException for an unknown flag, bad syntax, a bad value or a refused flag
     */
    static Options parse(List<String> args, Map<String, String> env) {
        Map<String, List<String>> given = Flags.parse(args, env);
        Options o = new Options();
        Integer verbosity = null;
        String level = null;
        for (Map.Entry<String, List<String>> e : given.entrySet()) {
            Flag flag = Flags.lookup(e.getKey());
            String where = Flags.source(flag.name(), args);
            List<String> values = e.getValue();
            String v = values.get(values.size() - 1);
            Value value = new Value(flag, where, v);
            if (flag.status() == Status.REFUSED) {
                if (!value.isDefault()) {
                    throw new UsageException(where + ": " + flag.refusal());
                }
                continue;
            }
            if (flag.status() == Status.KUBERNETES_ONLY) {
                if (!value.isDefault()) {
                    o.kubernetesOnly.add(where);
                }
                continue;
            }
            switch (flag.name()) {
                case "etcd-endpoints" -> o.etcdEndpoints = value.endpoints();
                case "etcd-prefix" -> o.etcdPrefix = value.prefix();
                case "etcd-keyfile" -> o.etcdKeyFile = v;
                case "etcd-certfile" -> o.etcdCertFile = v;
                case "etcd-cafile" -> o.etcdCaFile = v;
                case "etcd-username" -> o.etcdUsername = v;
                case "etcd-password" -> o.etcdPassword = v;
                case "iface" -> o.ifaces = List.copyOf(values);
                case "iface-regex" -> {
                    List<Pattern> patterns = new ArrayList<>();
                    for (String s : values) {
                        patterns.add(new Value(flag, where, s).regex());
                    }
                    o.ifaceRegexes = List.copyOf(patterns);
                }
                case "iface-can-reach" -> o.ifaceCanReach = v.isEmpty() ? null : value.ipv4();
                case "subnet-file" -> o.subnetFile = Path.of(value.nonEmpty());
                case "public-ip" -> o.publicIp = v.isEmpty() ? null : value.ipv4();
                case "subnet-lease-renew-margin" -> o.renewMarginMinutes = value.integer(1, 1439);
                case "ip-masq" -> o.ipMasq = value.bool();
                case "ip-masq-fully-random-disable" -> o.ipMasqFullyRandomDisable = value.bool();
                case "iptables-resync" -> o.iptablesResyncSeconds = value.integer(1, 86_400);
                case "iptables-forward-rules" -> o.iptablesForwardRules = value.bool();
                case "ip-blackhole-route" -> o.blackholeRoute = value.bool();
                case "healthz-ip" -> o.healthzIp = value.address();
                case "healthz-port" -> o.healthzPort = value.integer(0, 65535);
                case "v" -> verbosity = value.integer(Integer.MIN_VALUE, Integer.MAX_VALUE);
                case "log-level" -> level = value.logLevel();
                case "udp-offloads" -> o.udpOffloads = value.bool();
                case "vxlan-dataplane" -> o.vxlanDataPlane = value.dataPlane();
                case "version" -> o.version = value.bool();
                case "help" -> o.help = value.bool();
                default -> throw new IllegalStateException("flag without a setter: " + flag.name());
            }
        }
        if (level != null) {
            o.logLevel = level;
        } else if (verbosity != null) {
            o.logLevel = verbosity >= 4 ? "trace" : verbosity >= 1 ? "debug" : "info";
        }
        return o;
    }

    /** One flag's value with where it came from, and the checks flanneld's Go types make (and a few more). */
    private record Value(Flag flag, String where, String text) {
        boolean isDefault() {
            if (flag.kind() == Kind.BOOL) {
                return bool() == Boolean.parseBoolean(flag.defaultValue());
            }
            if ("log_backtrace_at".equals(flag.name()) && ":0".equals(text)) {
                return true; // klog's own default
            }
            return text.equals(flag.defaultValue());
        }

        UsageException bad(String why) {
            return new UsageException("invalid value \"" + text + "\" for " + where + ": " + why);
        }

        /** Go's {@code strconv.ParseBool}. */
        boolean bool() {
            return switch (text) {
                case "1", "t", "T", "TRUE", "true", "True" -> true;
                case "0", "f", "F", "FALSE", "false", "False" -> false;
                default -> throw bad("parse error (want true or false)");
            };
        }

        /** Go's {@code strconv.ParseInt(s, 0, 64)}: sign, 0x/0o/0b or leading-0 octal, underscores. */
        int integer(int min, int max) {
            String s = text;
            boolean negative = false;
            if (s.startsWith("+") || s.startsWith("-")) {
                negative = s.startsWith("-");
                s = s.substring(1);
            }
            int radix = 10;
            String lower = s.toLowerCase(Locale.ROOT);
            if (lower.startsWith("0x")) {
                radix = 16;
                s = s.substring(2);
            } else if (lower.startsWith("0o")) {
                radix = 8;
                s = s.substring(2);
            } else if (lower.startsWith("0b")) {
                radix = 2;
                s = s.substring(2);
            } else if (s.length() > 1 && s.startsWith("0")) {
                radix = 8;
                s = s.substring(1);
            }
            s = s.replace("_", "");
            long n;
            try {
                if (s.isEmpty() || s.startsWith("+") || s.startsWith("-")) {
                    throw new NumberFormatException();
                }
                n = Long.parseLong(s, radix);
            } catch (NumberFormatException e) {
                throw bad("parse error (want a whole number)");
            }
            n = negative ? -n : n;
            if (n < min || n > max) {
                throw bad("out of range " + min + ".." + max);
            }
            return (int) n;
        }

        String nonEmpty() {
            if (text.isEmpty()) {
                throw bad("must not be empty");
            }
            return text;
        }

        Inet4Address ipv4() {
            try {
                InetAddress a = InetAddresses.forString(text);
                if (a instanceof Inet4Address) {
                    return (Inet4Address) a;
                }
            } catch (IllegalArgumentException notAnAddress) {
                // fall through
            }
            throw bad("not an IPv4 address");
        }

        String address() {
            if (text.isEmpty()) {
                return "0.0.0.0";
            }
            if (!InetAddresses.isInetAddress(text)) {
                throw bad("not an IP address");
            }
            return text;
        }

        List<String> endpoints() {
            List<String> list = Arrays.asList(text.split(",", -1));
            for (String ep : list) {
                try {
                    URI uri = new URI(ep);
                    if (!("http".equals(uri.getScheme()) || "https".equals(uri.getScheme())) || uri.getHost() == null
                            || uri.getPort() > 65535) {
                        throw new URISyntaxException(ep, "scheme");
                    }
                } catch (URISyntaxException e) {
                    throw bad("'" + ep + "' is not an http:// or https:// URL with a host");
                }
            }
            return List.copyOf(list);
        }

        String prefix() {
            if (!text.startsWith("/") || text.replaceAll("/+$", "").isEmpty()) {
                throw bad("the etcd prefix must be an absolute key path such as /coreos.com/network");
            }
            return text;
        }

        Pattern regex() {
            try {
                return Pattern.compile(text);
            } catch (PatternSyntaxException e) {
                throw bad("not a regular expression: " + e.getDescription());
            }
        }

        VxlanBackend.DataPlane dataPlane() {
            try {
                return VxlanBackend.DataPlane.parse(text);
            } catch (IllegalArgumentException e) {
                throw bad("want kernel, userspace or auto");
            }
        }

        String logLevel() {
            String l = text.toLowerCase(Locale.ROOT);
            return switch (l) {
                case "error", "warn", "info", "debug", "trace" -> l;
                case "warning" -> "warn";
                default -> throw bad("want error, warn, info, debug or trace");
            };
        }
    }
}
