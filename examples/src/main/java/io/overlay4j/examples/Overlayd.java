package io.overlay4j.examples;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.udp.UdpBackend;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code overlayd}: a drop-in for flanneld (etcd mode, udp backend) built on overlay4j. It takes flanneld's flags and
 * their {@code FLANNELD_*} environment forms, stores leases in etcd exactly as flanneld does, writes the same
 * {@code subnet.env}, serves {@code /healthz} and {@code /readyz}, keeps retrying while etcd is unreachable or the
 * config is missing, and on SIGTERM or SIGINT removes its device and route and exits 0.
 *
 * <pre>
 * java -jar overlayd.jar --etcd-endpoints http://10.0.0.1:2379 --iface eth0
 * </pre>
 */
public final class Overlayd {
    /** Exit status for bad flags. */
    static final int EXIT_USAGE = 2;
    static final String VERSION = "overlayd (overlay4j) 0.1.0-SNAPSHOT";

    private final Options options;
    private final PrintStream err;
    private final CountDownLatch stop = new CountDownLatch(1);
    private volatile boolean ready;
    private HttpServer health;

    private Overlayd(Options options, PrintStream err) {
        this.options = options;
        this.err = err;
    }

    /** Runs the daemon; see {@code --help}. */
    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args, System.getenv());
        } catch (IllegalArgumentException e) {
            System.err.println("overlayd: " + e.getMessage());
            System.err.println("run 'overlayd --help' for the flags");
            System.exit(EXIT_USAGE);
            return;
        }
        if (options.help) {
            System.out.print(Options.USAGE);
            return;
        }
        if (options.version) {
            System.out.println(VERSION);
            return;
        }
        System.exit(new Overlayd(options, System.err).run());
    }

    int run() {
        sun.misc.SignalHandler onSignal = s -> stop.countDown();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
        try {
            startHealthServer();
        } catch (IOException e) {
            err.println("overlayd: cannot serve health checks on " + options.healthzIp + ":" + options.healthzPort
                    + ": " + e.getMessage());
            return 1;
        }
        try (EtcdSubnetAllocator allocator = options.allocator()) {
            NetworkConfig config = waitForConfig(allocator);
            if (config == null) {
                return 0;
            }
            if (!"udp".equals(config.backendType())) {
                err.println("overlayd: unknown backend type: " + config.backendType()
                        + " (overlayd runs the udp backend)");
                return 1;
            }
            OverlayNode node = startNode(allocator);
            if (node == null) {
                return 0;
            }
            try {
                ready = true;
                log("joined " + config.network() + " with subnet " + node.lease().subnet() + ", mtu " + node.mtu()
                        + ", subnet file " + options.subnetFile);
                stop.await();
                log("stopping: " + node.stats());
            } finally {
                node.close();
            }
            return 0;
        } catch (OverlayException e) {
            err.println("overlayd: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        } finally {
            if (health != null) {
                health.stop(0);
            }
        }
    }

    /** Reads the network config, retrying every second (as flanneld) while etcd is down or the key is missing. */
    private NetworkConfig waitForConfig(SubnetAllocator allocator) throws InterruptedException {
        String last = null;
        while (true) {
            try {
                return allocator.networkConfig();
            } catch (OverlayException e) {
                if (e.kind() != OverlayException.Kind.CONFIG_NOT_FOUND
                        && e.kind() != OverlayException.Kind.STORE_UNAVAILABLE) {
                    throw e;
                }
                if (!e.getMessage().equals(last)) {
                    err.println("overlayd: " + e.getMessage() + " (retrying every second)");
                    last = e.getMessage();
                }
            }
            if (stop.await(1, TimeUnit.SECONDS)) {
                return null;
            }
        }
    }

    /** Starts the node, retrying with backoff while etcd is unreachable. */
    private OverlayNode startNode(SubnetAllocator allocator) throws InterruptedException {
        long backoff = 1000;
        while (true) {
            try {
                OverlayNode.Builder b = OverlayNode.builder()
                        .allocator(allocator)
                        .backend(UdpBackend.builder().build())
                        .subnetFile(options.subnetFile)
                        .ipMasq(options.ipMasq)
                        .renewMargin(Duration.ofMinutes(options.renewMarginMinutes));
                Interface nif = options.underlay();
                b.underlayInterface(nif.name);
                b.publicAddress(options.publicIp != null ? options.publicIp : nif.address);
                return b.build().start();
            } catch (OverlayException e) {
                if (e.kind() != OverlayException.Kind.STORE_UNAVAILABLE) {
                    throw e;
                }
                err.println("overlayd: " + e.getMessage() + " (retrying in " + backoff / 1000 + " s)");
            }
            if (stop.await(backoff, TimeUnit.MILLISECONDS)) {
                return null;
            }
            backoff = Math.min(backoff * 2, 30_000);
        }
    }

    private void startHealthServer() throws IOException {
        if (options.healthzPort <= 0) {
            return;
        }
        health = HttpServer.create(new InetSocketAddress(InetAddress.getByName(options.healthzIp),
                options.healthzPort), 0);
        health.createContext("/healthz", ex -> reply(ex, 200, "overlayd is running"));
        health.createContext("/readyz", ex -> {
            if (ready) {
                reply(ex, 200, "overlayd is ready");
            } else {
                reply(ex, 503, "overlayd is not ready yet");
            }
        });
        health.start();
    }

    private static void reply(HttpExchange ex, int status, String body) throws IOException {
        byte[] bytes = (body + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    private void log(String message) {
        err.println("overlayd: " + message);
    }

    /** An interface name with its first IPv4 address. */
    record Interface(String name, Inet4Address address) {
    }

    /** flanneld's flags, from the command line and {@code FLANNELD_*} variables (the command line wins). */
    static final class Options {
        static final String USAGE = String.join("\n",
                "usage: overlayd [flags]   (every flag may also be set as FLANNELD_<FLAG>, e.g. FLANNELD_ETCD_ENDPOINTS)",
                "  --etcd-endpoints=LIST          etcd endpoints, comma separated "
                        + "(default http://127.0.0.1:4001,http://127.0.0.1:2379)",
                "  --etcd-prefix=PATH             etcd key prefix (default /coreos.com/network)",
                "  --etcd-cafile/--etcd-certfile/--etcd-keyfile=FILE   TLS to etcd (used when cert and key are set)",
                "  --etcd-username/--etcd-password=S                    etcd credentials",
                "  --iface=NAME|IP                interface for inter-host traffic (repeatable; first match wins)",
                "  --public-ip=IP                 address published to the other hosts (default: the interface's)",
                "  --subnet-file=FILE             where to write subnet.env (default /run/flannel/subnet.env)",
                "  --subnet-lease-renew-margin=M  renew the lease M minutes before it expires, 1..1439 (default 60)",
                "  --ip-masq                      written to subnet.env as FLANNEL_IPMASQ (no rules are installed)",
                "  --healthz-ip=IP --healthz-port=N   serve /healthz and /readyz (port 0, the default, disables)",
                "  --help, --version", "");
        private static final Map<String, Boolean> FLAGS = new LinkedHashMap<>();

        static {
            for (String f : new String[] {"etcd-endpoints", "etcd-prefix", "etcd-cafile", "etcd-certfile",
                "etcd-keyfile", "etcd-username", "etcd-password", "iface", "public-ip", "subnet-file",
                "subnet-lease-renew-margin", "healthz-ip", "healthz-port"}) {
                FLAGS.put(f, true);
            }
            for (String f : new String[] {"ip-masq", "help", "version"}) {
                FLAGS.put(f, false);
            }
        }

        List<String> endpoints = List.of("http://127.0.0.1:4001", "http://127.0.0.1:2379");
        String prefix = "/coreos.com/network";
        String caFile;
        String certFile;
        String keyFile;
        String username;
        String password;
        List<String> ifaces = new ArrayList<>();
        Inet4Address publicIp;
        Path subnetFile = Path.of("/run/flannel/subnet.env");
        int renewMarginMinutes = 60;
        boolean ipMasq;
        String healthzIp = "0.0.0.0";
        int healthzPort;
        boolean help;
        boolean version;

        /**
         * Parses flags and the environment.
         *
         * @throws IllegalArgumentException with a message naming the bad flag or value
         */
        static Options parse(String[] args, Map<String, String> env) {
            Map<String, List<String>> given = new LinkedHashMap<>();
            for (Map.Entry<String, Boolean> f : FLAGS.entrySet()) {
                String var = "FLANNELD_" + f.getKey().toUpperCase(Locale.ROOT).replace('-', '_');
                String v = env.get(var);
                if (v != null && !v.isEmpty()) {
                    given.put(f.getKey(), new ArrayList<>(List.of(v)));
                }
            }
            Map<String, List<String>> cli = new LinkedHashMap<>();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (!a.startsWith("-")) {
                    throw new IllegalArgumentException("unexpected argument '" + a + "'");
                }
                String name = a.replaceFirst("^--?", "");
                String value = null;
                int eq = name.indexOf('=');
                if (eq >= 0) {
                    value = name.substring(eq + 1);
                    name = name.substring(0, eq);
                }
                Boolean takesValue = FLAGS.get(name);
                if (takesValue == null) {
                    throw new IllegalArgumentException("unknown flag --" + name);
                }
                if (takesValue && value == null) {
                    if (i + 1 >= args.length) {
                        throw new IllegalArgumentException("flag --" + name + " needs a value");
                    }
                    value = args[++i];
                }
                if (!takesValue) {
                    value = value == null ? "true" : value;
                }
                cli.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
            }
            given.putAll(cli);
            Options o = new Options();
            for (Map.Entry<String, List<String>> e : given.entrySet()) {
                o.set(e.getKey(), e.getValue());
            }
            return o;
        }

        private void set(String flag, List<String> values) {
            String v = values.get(values.size() - 1);
            switch (flag) {
                case "etcd-endpoints" -> {
                    endpoints = Arrays.stream(v.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
                    if (endpoints.isEmpty()) {
                        throw new IllegalArgumentException("--etcd-endpoints is empty");
                    }
                    for (String ep : endpoints) {
                        if (!ep.startsWith("http://") && !ep.startsWith("https://")) {
                            throw new IllegalArgumentException("--etcd-endpoints: '" + ep
                                    + "' is not an http:// or https:// URL");
                        }
                    }
                }
                case "etcd-prefix" -> prefix = v;
                case "etcd-cafile" -> caFile = v;
                case "etcd-certfile" -> certFile = v;
                case "etcd-keyfile" -> keyFile = v;
                case "etcd-username" -> username = v;
                case "etcd-password" -> password = v;
                case "iface" -> {
                    for (String s : values) {
                        ifaces.addAll(Arrays.stream(s.split(",")).map(String::trim).filter(x -> !x.isEmpty())
                                .toList());
                    }
                }
                case "public-ip" -> publicIp = ipv4("--public-ip", v);
                case "subnet-file" -> subnetFile = Path.of(v);
                case "subnet-lease-renew-margin" -> {
                    renewMarginMinutes = integer("--subnet-lease-renew-margin", v);
                    if (renewMarginMinutes < 1 || renewMarginMinutes > 1439) {
                        throw new IllegalArgumentException("--subnet-lease-renew-margin must be 1..1439 minutes: "
                                + v);
                    }
                }
                case "ip-masq" -> ipMasq = bool("--ip-masq", v);
                case "healthz-ip" -> healthzIp = v;
                case "healthz-port" -> {
                    healthzPort = integer("--healthz-port", v);
                    if (healthzPort < 0 || healthzPort > 65535) {
                        throw new IllegalArgumentException("--healthz-port must be 0..65535: " + v);
                    }
                }
                case "help" -> help = bool("--help", v);
                case "version" -> version = bool("--version", v);
                default -> throw new IllegalArgumentException("unknown flag --" + flag);
            }
        }

        private static int integer(String flag, String v) {
            try {
                return Integer.parseInt(v.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(flag + " needs a whole number: " + v);
            }
        }

        private static boolean bool(String flag, String v) {
            switch (v.toLowerCase(Locale.ROOT)) {
                case "true", "1", "t", "yes" -> {
                    return true;
                }
                case "false", "0", "f", "no" -> {
                    return false;
                }
                default -> throw new IllegalArgumentException(flag + " needs true or false: " + v);
            }
        }

        private static Inet4Address ipv4(String flag, String v) {
            try {
                return Ipv4Prefix.parseAddress(v);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(flag + " needs an IPv4 address: " + v);
            }
        }

        EtcdSubnetAllocator allocator() {
            EtcdSubnetAllocator.Builder b = EtcdSubnetAllocator.builder().endpoints(endpoints).prefix(prefix);
            if (certFile != null && keyFile != null) {
                b.tls(caFile == null ? null : Path.of(caFile), Path.of(certFile), Path.of(keyFile));
            } else if (caFile != null || certFile != null || keyFile != null) {
                System.err.println("overlayd: TLS needs both --etcd-certfile and --etcd-keyfile; using plain HTTP");
            }
            if (username != null) {
                b.credentials(username, password == null ? "" : password);
            }
            return b.build();
        }

        /** The underlay interface: the first --iface that matches a name or address, else by --public-ip. */
        Interface underlay() {
            try {
                for (String want : ifaces) {
                    NetworkInterface nif = NetworkInterface.getByName(want);
                    if (nif == null) {
                        try {
                            nif = NetworkInterface.getByInetAddress(Ipv4Prefix.parseAddress(want));
                        } catch (IllegalArgumentException notAnAddress) {
                            nif = null;
                        }
                    }
                    if (nif != null) {
                        Inet4Address a = firstIpv4(nif);
                        if (a != null) {
                            return new Interface(nif.getName(), a);
                        }
                    }
                }
                if (!ifaces.isEmpty()) {
                    throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                            "none of --iface " + ifaces + " is an interface with an IPv4 address");
                }
                if (publicIp != null) {
                    NetworkInterface nif = NetworkInterface.getByInetAddress(publicIp);
                    if (nif == null) {
                        throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT, "--public-ip "
                                + publicIp.getHostAddress() + " is on no local interface; behind NAT also pass --iface");
                    }
                    return new Interface(nif.getName(), publicIp);
                }
                for (NetworkInterface nif : NetworkInterface.networkInterfaces().toList()) {
                    Inet4Address a = firstIpv4(nif);
                    if (nif.isUp() && !nif.isLoopback() && a != null) {
                        return new Interface(nif.getName(), a);
                    }
                }
                throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                        "no interface is up with an IPv4 address; pass --iface");
            } catch (SocketException e) {
                throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT, "cannot list interfaces: " + e, e);
            }
        }

        private static Inet4Address firstIpv4(NetworkInterface nif) {
            return nif.inetAddresses().filter(a -> a instanceof Inet4Address).map(a -> (Inet4Address) a)
                    .findFirst().orElse(null);
        }
    }
}
