package io.overlay4j.overlayd;

import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.overlay4j.Backend;
import io.overlay4j.Backends;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.SubnetFile;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.micrometer.OverlayNodeMetrics;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.udp.UdpBackend;
import io.overlay4j.vxlan.VxlanBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's life, in flanneld's order: health server; network config (retried every second while it is missing,
 * invalid, names a backend overlayd does not have, or etcd is unreachable); interface; backend and lease; traffic
 * rules; subnet.env; ready ({@code /readyz}, {@code sd_notify READY=1}); then rules resync and renewals until SIGTERM
 * or SIGINT, which end it with status 0 ({@code STOPPING=1} first). Start-up faults that retrying cannot fix (no such
 * interface, a port or device in use, missing iptables) are one log line and status 1.
 */
final class Daemon {
    private static final Logger log = LoggerFactory.getLogger("overlayd");
    static final int EXIT_FAILURE = 1;

    private final Options options;
    private final SdNotify notify;
    private final CountDownLatch stop = new CountDownLatch(1);
    private final RateLimitedLog configWarnings = new RateLimitedLog(log, 60_000);
    private final Commands commands = new Commands();
    private volatile int exitCode;
    /** The backend of the node started last. */
    private Backend started;
    /** Readiness and the node's log lines; a lost lease ends the daemon with status 1. */
    private final NodeMonitor monitor = new NodeMonitor(message -> {
        exitCode = EXIT_FAILURE;
        stop.countDown();
    });
    /** What {@code /metrics} serves: the node's meters (overlay-micrometer) and the JVM's. */
    private final PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private volatile OverlayNodeMetrics nodeMetrics;

    Daemon(Options options, Map<String, String> env) {
        this.options = options;
        this.notify = new SdNotify(env.get("NOTIFY_SOCKET"));
        new JvmMemoryMetrics().bindTo(metrics);
        new JvmThreadMetrics().bindTo(metrics);
        new ProcessorMetrics().bindTo(metrics);
        new UptimeMetrics().bindTo(metrics);
    }

    /** Ends {@link #run} (what SIGTERM and SIGINT do). */
    void stop() {
        stop.countDown();
    }

    int run() {
        for (String k : options.kubernetesOnly) {
            log.warn("{} has no effect outside Kubernetes mode (as in flanneld)", k);
        }
        HealthServer health = null;
        EtcdSubnetAllocator etcd = null;
        OverlayNode node = null;
        ScheduledExecutorService timers = null;
        try {
            if (options.healthzPort > 0) {
                try {
                    health = HealthServer.start(options.healthzIp, options.healthzPort, monitor::ready,
                            metrics::scrape);
                    log.info("serving /healthz, /readyz and /metrics on {}:{}", options.healthzIp,
                            options.healthzPort);
                } catch (IOException e) {
                    return fatal("cannot serve /healthz on " + options.healthzIp + ":" + options.healthzPort + ": "
                            + describe(e));
                }
            }
            etcd = allocator();
            SubnetAllocator allocator = etcd;
            NetworkConfig config = awaitConfig(allocator);
            if (config == null) {
                return exitCode;
            }
            if (!config.enableNFTables() && !Files.exists(Path.of("/proc/sys/net/bridge/bridge-nf-call-iptables"))) {
                log.warn("br_netfilter is not loaded (/proc/sys/net/bridge/bridge-nf-call-iptables is missing): "
                        + "bridged container traffic bypasses iptables; flanneld refuses to start here, "
                        + "overlayd goes on");
            }
            InterfaceSelector.Selected iface;
            try (NetlinkRouteProgrammer netlink = NetlinkRouteProgrammer.open()) {
                iface = InterfaceSelector.of(netlink).select(options);
            } catch (InterfaceSelector.NoInterfaceException | IOException e) {
                return fatal("cannot find the interface to use: " + describe(e));
            }
            TrafficRules rules = null;
            if (options.ipMasq || options.iptablesForwardRules) {
                try {
                    rules = config.enableNFTables() ? NftablesRules.open(commands) : IptablesRules.open(commands);
                } catch (IOException e) {
                    return fatal("cannot install traffic rules (" + (options.ipMasq ? "-ip-masq" : "")
                            + (options.ipMasq && options.iptablesForwardRules ? ", " : "")
                            + (options.iptablesForwardRules ? "-iptables-forward-rules" : "") + "): " + describe(e));
                }
            }
            Optional<SubnetFile.Contents> previous = SubnetFile.read(options.subnetFile);
            Ipv4Prefix previousSubnet = previous.map(SubnetFile.Contents::subnet)
                    .or(() -> SubnetFile.readPreviousSubnet(options.subnetFile)).orElse(null);

            node = startNode(allocator, config, iface, previousSubnet);
            if (node == null) {
                return exitCode;
            }
            log.info("backend {} started on {}: subnet {}, mtu {}{}", config.backendType(), iface.name(),
                    node.lease().subnet(), node.mtu(), dataPlaneNote());

            if (rules != null) {
                rules.cleanUpOther();
                if (options.ipMasq) {
                    try {
                        rules.setupMasquerade(config.network(), node.lease().subnet(),
                                previous.map(SubnetFile.Contents::network).orElse(null), previousSubnet,
                                options.ipMasqFullyRandomDisable);
                    } catch (IOException e) {
                        return fatal("failed to set up the masquerade rules: " + describe(e));
                    }
                }
                if (options.iptablesForwardRules) {
                    try {
                        rules.setupForward(config.network());
                    } catch (IOException e) {
                        log.error("failed to set up the forward rules (retrying every {} s): {}",
                                options.iptablesResyncSeconds, describe(e));
                    }
                }
            }
            if (options.blackholeRoute) {
                blackholeRoute(node.lease().subnet());
            }
            try {
                SubnetFile.write(options.subnetFile, new SubnetFile.Contents(config.network(), node.lease().subnet(),
                        node.mtu(), options.ipMasq));
                log.info("wrote subnet file to {}", options.subnetFile);
            } catch (IOException | RuntimeException e) {
                log.warn("failed to write subnet file {}: {}", options.subnetFile, describe(e));
            }
            monitor.started();
            sdNotify("READY=1");

            timers = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "overlayd-resync");
                t.setDaemon(true);
                return t;
            });
            TrafficRules resync = rules;
            OverlayNode running = node;
            timers.scheduleWithFixedDelay(() -> resync(resync, running), options.iptablesResyncSeconds,
                    options.iptablesResyncSeconds, TimeUnit.SECONDS);

            stop.await();
            log.info("stopping");
            sdNotify("STOPPING=1");
            return exitCode;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return EXIT_FAILURE;
        } finally {
            if (timers != null) {
                timers.shutdownNow();
            }
            if (node != null) {
                try {
                    node.close();
                } catch (RuntimeException e) {
                    log.warn("closing the node: {}", describe(e));
                }
            }
            if (nodeMetrics != null) {
                nodeMetrics.close();
            }
            if (etcd != null) {
                etcd.close();
            }
            if (health != null) {
                health.close();
            }
        }
    }

    private int fatal(String message) {
        log.error(message);
        return EXIT_FAILURE;
    }

    private EtcdSubnetAllocator allocator() {
        EtcdSubnetAllocator.Builder b = EtcdSubnetAllocator.builder()
                .endpoints(options.etcdEndpoints)
                .prefix(options.etcdPrefix)
                .requestTimeout(Duration.ofSeconds(5));
        if (!options.etcdCertFile.isEmpty() || !options.etcdKeyFile.isEmpty() || !options.etcdCaFile.isEmpty()) {
            b.tls(options.etcdCaFile.isEmpty() ? null : Path.of(options.etcdCaFile),
                    options.etcdCertFile.isEmpty() ? null : Path.of(options.etcdCertFile),
                    options.etcdKeyFile.isEmpty() ? null : Path.of(options.etcdKeyFile));
        }
        if (!options.etcdUsername.isEmpty()) {
            b.credentials(options.etcdUsername, options.etcdPassword);
        }
        return b.build();
    }

    /**
     * The network config, retried every second (as flanneld) while etcd is unreachable, the key is missing, the
     * config is invalid or names a backend type overlayd cannot run; {@code null} if stopped meanwhile.
     */
    private NetworkConfig awaitConfig(SubnetAllocator allocator) throws InterruptedException {
        while (true) {
            try {
                NetworkConfig config = allocator.networkConfig();
                Backend backend = backendFor(config);
                log.info("found network config: network {}, subnet length {}, backend type {}{}", config.network(),
                        config.subnetLen(), backend.type(), config.enableNFTables() ? ", nftables" : "");
                return config;
            } catch (OverlayException e) {
                switch (e.kind()) {
                    case STORE_UNAVAILABLE -> configWarnings.warn("etcd is unreachable (retrying every second): "
                            + e.getMessage());
                    case CONFIG_NOT_FOUND -> configWarnings.warn("couldn't find the network config at "
                            + options.etcdPrefix + "/config (retrying every second): " + e.getMessage());
                    default -> configWarnings.error("couldn't use the network config at " + options.etcdPrefix
                            + "/config (retrying every second): " + e.getMessage());
                }
            }
            if (stop.await(1, TimeUnit.SECONDS)) {
                return null;
            }
        }
    }

    /** For vxlan: which data plane runs (what {@code -vxlan-dataplane=auto} chose), e.g. {@code , kernel data plane}. */
    private String dataPlaneNote() {
        if (started instanceof VxlanBackend vxlan) {
            return vxlan.activeDataPlane().map(d -> ", " + d.name().toLowerCase(Locale.ROOT) + " data plane")
                    .orElse("");
        }
        return "";
    }

    /**
     * The backend the config names; udp and vxlan with overlayd's options (udp: flannel0 and offloads; vxlan: the data
     * plane, and the offloads of its userspace one).
     */
    private Backend backendFor(NetworkConfig config) {
        if (UdpBackend.TYPE.equals(config.backendType())) {
            UdpBackend.Builder b = UdpBackend.builder().tunName("flannel0");
            if (options.udpOffloads != null) {
                b.offloads(options.udpOffloads);
            }
            return b.build();
        }
        if (VxlanBackend.TYPE.equals(config.backendType())) {
            VxlanBackend.Builder b = VxlanBackend.builder().dataPlane(options.vxlanDataPlane);
            if (options.udpOffloads != null) {
                b.offloads(options.udpOffloads);
            }
            return b.build();
        }
        return Backends.create(config.backendType());
    }

    /**
     * Starts the node; it retries by itself while etcd is unreachable, the config is missing or invalid, or a create
     * race is lost. Returns null if stopped meanwhile, or after a failure that retrying cannot fix (one error line,
     * exitCode set).
     */
    private OverlayNode startNode(SubnetAllocator allocator, NetworkConfig config, InterfaceSelector.Selected iface,
                                  Ipv4Prefix previousSubnet) throws InterruptedException {
        OverlayNode node;
        try {
            started = backendFor(config);
            OverlayNode.Builder b = OverlayNode.builder()
                    .allocator(allocator)
                    .backend(started)
                    .underlayInterface(iface.name())
                    .underlayAddress(iface.address())
                    .publicAddress(iface.publicIp())
                    .subnetFile(null) // written by the daemon, after the traffic rules, as flanneld does
                    .moveOnLeaseLoss(false) // overlayd exits instead of re-addressing under its containers
                    .renewMargin(Duration.ofMinutes(options.renewMarginMinutes))
                    .listener(monitor);
            if (previousSubnet != null) {
                b.preferredSubnet(previousSubnet);
            }
            node = b.build();
            // Bound before the start, so /metrics shows the node starting too (and retrying while etcd is away).
            nodeMetrics = new OverlayNodeMetrics(node);
            nodeMetrics.bindTo(metrics);
        } catch (OverlayException e) {
            exitCode = fatal("cannot start the " + config.backendType() + " backend: " + describe(e));
            return null;
        }
        CompletableFuture<OverlayNode> started = node.startAsync();
        while (true) {
            try {
                return started.get(1, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                if (stop.getCount() == 0) {
                    node.close();
                    return null;
                }
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                String where = bindHint(cause, config, iface);
                exitCode = fatal("cannot start the " + config.backendType() + " backend: " + describe(cause) + where);
                return null;
            }
        }
    }

    /** For a port conflict of the udp backend: which port and address. */
    private static String bindHint(Throwable cause, NetworkConfig config, InterfaceSelector.Selected iface) {
        for (Throwable t = cause; t != null; t = t.getCause()) {
            if (t instanceof java.net.BindException && UdpBackend.TYPE.equals(config.backendType())) {
                return " (UDP port " + config.backendInt("Port", 8285) + " on " + iface.address().getHostAddress()
                        + ")";
            }
        }
        return "";
    }

    private void resync(TrafficRules rules, OverlayNode node) {
        try {
            if (rules != null) {
                rules.ensure();
            }
        } catch (IOException | RuntimeException e) {
            log.error("failed to ensure the traffic rules: {}", describe(e));
        }
        if (options.blackholeRoute) {
            blackholeRoute(node.lease().subnet());
        }
    }

    /** flanneld's {@code -ip-blackhole-route}: a blackhole route for our subnet unless one exists. */
    private void blackholeRoute(Ipv4Prefix subnet) {
        try {
            String have = commands.check(List.of("ip", "-4", "route", "show", "type", "blackhole", "exact",
                    subnet.toString()), null);
            if (have.isBlank()) {
                commands.check(List.of("ip", "-4", "route", "add", "blackhole", subnet.toString()), null);
                log.info("added blackhole route {}", subnet);
            }
        } catch (IOException e) {
            log.error("failed to set up the blackhole route for {}: {}", subnet, describe(e));
        }
    }

    private void sdNotify(String state) {
        try {
            if (notify.notify(state)) {
                log.debug("sd_notify {}", state);
            }
        } catch (IOException e) {
            log.error("failed to notify systemd ({}): {}", state, e.getMessage());
        }
    }

    /** A one-line description: the message, and the causes' messages where they add something. */
    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
            if (sb.indexOf(m) >= 0) {
                continue;
            }
            if (sb.length() > 0) {
                sb.append(": ");
            }
            sb.append(m);
        }
        return sb.toString().replace('\n', ' ');
    }
}
