package io.overlay4j.bench.scale;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KV;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.overlay4j.Backend;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.bench.ProcessResources;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.hostgw.HostGwBackend;
import io.overlay4j.tun.FdbEntry;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.Neighbour;
import io.overlay4j.udp.UdpBackend;
import io.overlay4j.vxlan.VxlanBackend;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

/**
 * A thousand hosts: how one node learns and programs a large network, and keeps up with churn. Not a test (nothing is
 * timed against a limit); a benchmark with checks. Needs root and Debian's {@code etcd} (started here on loopback
 * unless {@code --etcd} names one).
 *
 * <p>For each backend ({@code udp}, {@code vxlan} on the kernel's and on the userspace data plane, {@code host-gw}),
 * in a network namespace of its own with a veth underlay, a real {@link OverlayNode} on a real etcd:
 * <ol>
 *   <li><b>learn</b>: the node runs alone, then {@code --hosts} leases are written into etcd (transactions of 100);
 *   measured: until the node lists them all ({@link OverlayNode#peers()}) and until they are programmed, checked by
 *   netlink dumps of the kernel state (vxlan: a permanent neighbour, an FDB entry and an onlink route per peer;
 *   host-gw: a route via the peer's address) or, for the userspace data planes, by one probe datagram per peer subnet
 *   through the TUN, each of which the forwarder must send (no {@link DropReason#NO_ROUTE});</li>
 *   <li><b>churn</b>: {@code --churn-rate} joins and leaves per second (half each) for {@code --churn-seconds};
 *   measured: the lag until the node's state equals etcd's again, the JVM's CPU per 1,000 events, and its heap after
 *   GC, RSS, threads and file descriptors before and after (flat or not);</li>
 *   <li><b>restart</b>: the node is closed (removing what it made) and started again with all the leases present;
 *   measured: until READY, and until programmed.</li>
 * </ol>
 * The final state is compared with etcd's own key set, read back, not with what the benchmark believes it wrote.
 *
 * <pre>
 * java -cp overlay-bench/target/benchmarks.jar io.overlay4j.bench.scale.ThousandHosts
 *      [--hosts 1000] [--churn-rate 100] [--churn-seconds 60] [--backends udp,vxlan,vxlan-userspace,host-gw]
 *      [--etcd URL]
 * </pre>
 * Exit status 0 when every final state matched etcd's and the JVM stayed flat, 1 otherwise.
 */
public final class ThousandHosts {
    static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("100.64.0.0/10");
    static final int FIRST_INDEX = 1024;
    static final int PEER_IP_BASE = Ipv4Prefix.toInt(Ipv4Prefix.parseAddress("172.16.0.16"));
    static final String DEVICE_VXLAN = "flannel.1";
    static final String UNDERLAY = "eth0";

    private final int hosts;
    private final int churnRate;
    private final int churnSeconds;
    private final Client client;
    private final String endpoint;
    private final SplittableRandom random = new SplittableRandom(0x7a11c0de);

    ThousandHosts(int hosts, int churnRate, int churnSeconds, Client client, String endpoint) {
        this.hosts = hosts;
        this.churnRate = churnRate;
        this.churnSeconds = churnSeconds;
        this.client = client;
        this.endpoint = endpoint;
    }

    /** Runs the benchmark; see the class comment. */
    public static void main(String[] args) throws Exception {
        // The backends log every peer at INFO: thousands of lines during churn. Warnings and errors only.
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        int hosts = 1000;
        int rate = 100;
        int seconds = 60;
        String etcd = null;
        List<String> backends = List.of("udp", "vxlan", "vxlan-userspace", "host-gw");
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            if (v == null && !args[i].equals("--help") && !args[i].equals("-h")) {
                usage(args[i] + " needs a value");
            }
            switch (args[i]) {
                case "--hosts" -> hosts = Integer.parseInt(v);
                case "--churn-rate" -> rate = Integer.parseInt(v);
                case "--churn-seconds" -> seconds = Integer.parseInt(v);
                case "--etcd" -> etcd = v;
                case "--backends" -> backends = List.of(v.split(","));
                case "-h", "--help" -> {
                    usage(null);
                    return;
                }
                default -> usage("unknown option " + args[i]);
            }
            i++;
        }
        if (hosts < 1 || hosts > 8000 || rate < 0 || seconds < 0) {
            usage("--hosts must be 1..8000, --churn-rate and --churn-seconds not negative");
        }
        for (String b : backends) {
            if (!List.of("udp", "vxlan", "vxlan-userspace", "host-gw").contains(b)) {
                usage("unknown backend " + b);
            }
        }
        String cpu = cpuModel();
        List<Result> results = new ArrayList<>();
        double writerCpu = 0;
        EtcdProcess ownEtcd = etcd == null ? EtcdProcess.start() : null;
        String url = etcd != null ? etcd : ownEtcd.endpoint();
        // The benchmark's own client runs its callbacks on two fixed threads, so its thread count does not vary.
        java.util.concurrent.ExecutorService callbacks = java.util.concurrent.Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "bench-etcd-client");
            t.setDaemon(true);
            return t;
        });
        try (Client client = Client.builder().endpoints(url).executorService(callbacks).build()) {
            // Warm-up, not reported: the JIT, jetcd's and the node's classes, so the first backend is not the slowest.
            log("warm-up: %s with %d hosts, churn for %d s (not reported)", backends.get(0), Math.min(hosts, 200),
                    Math.min(seconds, 3));
            new ThousandHosts(Math.min(hosts, 200), rate, Math.min(seconds, 3), client, url).run(backends.get(0));
            ThousandHosts bench = new ThousandHosts(hosts, rate, seconds, client, url);
            writerCpu = bench.writerAlone();
            for (String b : backends) {
                results.add(bench.run(b));
            }
        } finally {
            callbacks.shutdown();
            if (ownEtcd != null) {
                ownEtcd.close();
            }
        }
        System.out.printf(Locale.ROOT, "%nthousand hosts: %d leases, churn %d/s for %d s, %s, %d cores, kernel %s%n",
                hosts, rate, seconds, cpu, Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.version"));
        System.out.printf(Locale.ROOT, "CPU per 1,000 churn events is this JVM's (the node's and the benchmark's etcd "
                + "writer's); the writer alone, with no node watching, took %.2f s per 1,000.%n", writerCpu);
        System.out.println(Result.HEADER);
        boolean ok = true;
        for (Result r : results) {
            System.out.println(r.row());
            ok &= r.ok();
        }
        for (Result r : results) {
            System.out.println(r.backend + ": " + r.notes);
        }
        System.exit(ok ? 0 : 1);
    }

    private static void usage(String problem) {
        if (problem != null) {
            System.err.println(problem);
        }
        System.err.println("usage: ThousandHosts [--hosts 1000] [--churn-rate 100] [--churn-seconds 60] "
                + "[--backends udp,vxlan,vxlan-userspace,host-gw] [--etcd URL]   (root; etcd on the PATH unless "
                + "--etcd)");
        if (problem != null) {
            System.exit(2);
        }
    }

    static String cpuModel() {
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            return lines.filter(l -> l.startsWith("model name")).map(l -> l.substring(l.indexOf(':') + 1).trim())
                    .findFirst().orElse("unknown CPU");
        } catch (IOException e) {
            return "unknown CPU";
        }
    }

    private static void log(String format, Object... args) {
        System.err.printf(Locale.ROOT, "[thousand] " + format + "%n", args);
    }

    /**
     * The CPU seconds per 1,000 churn writes with no node watching: the benchmark's own share of the CPU figure.
     * Writes and deletes 10 s' worth of churn (at most) under a scratch prefix.
     */
    double writerAlone() throws Exception {
        String prefix = "/o4j-thousand/writer" + ProcessHandle.current().pid();
        State state = new State("none", prefix);
        state.leaseId = client.getLeaseClient().grant(600).get(10, TimeUnit.SECONDS).getID();
        for (int i = 0; i < hosts; i++) {
            int index = state.nextIndex++;
            state.expected.put(subnet(index), index);
            put(prefix + "/subnets/" + subnet(index).toSubnetKey(), "{}");
        }
        ThousandHosts shorter = new ThousandHosts(hosts, churnRate, Math.min(churnSeconds, 10), client, endpoint);
        long cpu0 = ProcessResources.cpuNanos();
        long events = shorter.churn(prefix, "udp", state, new Result("writer"));
        double perThousand = (ProcessResources.cpuNanos() - cpu0) / 1e9 / Math.max(1, events) * 1000;
        client.getKVClient().delete(bytes(prefix), DeleteOption.builder().isPrefix(true).build())
                .get(30, TimeUnit.SECONDS);
        log("the etcd writer alone: %.2f CPU s per 1,000 churn events", perThousand);
        return perThousand;
    }

    // ---- one backend ----

    Result run(String backend) throws Exception {
        Result r = new Result(backend);
        String prefix = "/o4j-thousand/" + backend.replace("-", "") + ProcessHandle.current().pid();
        String ns = "o4jk" + ProcessHandle.current().pid() + "-" + backend.replace("-", "");
        put(prefix + "/config", "{\"Network\":\"" + NETWORK + "\",\"SubnetLen\":24,\"Backend\":{\"Type\":\""
                + (backend.equals("vxlan-userspace") ? "vxlan" : backend) + "\"}}");
        NetworkNamespace host = NetworkNamespace.create(ns);
        EtcdSubnetAllocator allocator = null;
        OverlayNode node = null;
        try (NetlinkRouteProgrammer nl = host.call(NetlinkRouteProgrammer::open)) {
            underlay(nl, backend);
            allocator = EtcdSubnetAllocator.builder().endpoints(endpoint).prefix(prefix).build();
            State state = new State(backend, prefix);

            // 1. learn: the node alone, then all the leases at once.
            node = start(host, allocator, backend);
            state.own = node.lease().subnet();
            long t0 = System.nanoTime();
            long leaseId = client.getLeaseClient().grant(3600).get(10, TimeUnit.SECONDS).getID();
            state.leaseId = leaseId;
            List<Op> batch = new ArrayList<>();
            for (int i = 0; i < hosts; i++) {
                int index = state.nextIndex++;
                state.expected.put(subnet(index), index);
                batch.add(Op.put(key(prefix, subnet(index)), value(backend, index),
                        PutOption.builder().withLeaseId(leaseId).build()));
                if (batch.size() == 100 || i == hosts - 1) {
                    client.getKVClient().txn().Then(batch.toArray(new Op[0])).commit().get(30, TimeUnit.SECONDS);
                    batch.clear();
                }
            }
            r.writeSeconds = seconds(t0);
            OverlayNode n = node;
            await(() -> n.peers().size() == hosts, 300, "the node to list " + hosts + " peers");
            r.learnSeconds = seconds(t0);
            await(() -> programmed(nl, host, n, state, false), 300, () -> "the leases to be programmed: "
                    + state.lastDiff);
            r.programSeconds = seconds(t0);
            log("%s: %d leases written in %.2f s, all listed by the node %.2f s and programmed %.2f s after the first "
                    + "write", backend, hosts,
                    r.writeSeconds, r.learnSeconds, r.programSeconds);

            // 2. churn
            r.before = ProcessResources.afterGc();
            long cpu0 = ProcessResources.cpuNanos();
            long events = churn(prefix, backend, state, r);
            r.lagSeconds = await(() -> programmed(nl, host, n, state, false), 300, () -> "the churn to be programmed: "
                    + state.lastDiff);
            r.cpuPerThousand = (ProcessResources.cpuNanos() - cpu0) / 1e9 / Math.max(1, events) * 1000;
            r.events = events;
            r.after = ProcessResources.afterGc();
            r.etcdMatches = matchesEtcd(prefix, state);
            r.finalMatches = programmed(nl, host, n, state, true);
            log("%s: %d churn events, programmed %.2f s after the last; final state equals etcd's: %s; %s -> %s",
                    backend, events, r.lagSeconds, r.etcdMatches && r.finalMatches, r.before, r.after);

            // 3. restart with everything present
            node.close();
            node = null;
            long t1 = System.nanoTime();
            node = start(host, allocator, backend);
            r.restartReadySeconds = seconds(t1);
            OverlayNode n2 = node;
            int size = state.expected.size();
            await(() -> n2.peers().size() == size, 300, "the restarted node to list its peers");
            await(() -> programmed(nl, host, n2, state, false), 300,
                    () -> "the restarted node to program its peers: " + state.lastDiff);
            r.restartProgramSeconds = seconds(t1);
            log("%s: restarted with %d peers: READY after %.2f s, programmed after %.2f s", backend, size,
                    r.restartReadySeconds, r.restartProgramSeconds);
            r.peers = size;
        } catch (Exception e) {
            r.notes.add("failed: " + e);
            e.printStackTrace();
        } finally {
            if (node != null) {
                node.close();
            }
            if (allocator != null) {
                allocator.close();
            }
            host.delete();
            client.getKVClient().delete(bytes(prefix), DeleteOption.builder().isPrefix(true).build())
                    .get(30, TimeUnit.SECONDS);
        }
        return r;
    }

    private OverlayNode start(NetworkNamespace host, EtcdSubnetAllocator allocator, String backend) {
        Backend b = switch (backend) {
            case "udp" -> UdpBackend.builder().build();
            case "vxlan" -> VxlanBackend.builder().cleanUpOnClose(true).build();
            case "vxlan-userspace" -> VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.USERSPACE).build();
            default -> HostGwBackend.builder().cleanUpOnClose(true).build();
        };
        return OverlayNode.builder().allocator(allocator).backend(b).underlayInterface(UNDERLAY)
                .threadFactory(host.threadFactory()).build().start();
    }

    /** The backends whose data plane is overlay4j's forwarder: their peer table is probed through the TUN. */
    private static boolean userspace(String backend) {
        return backend.equals("udp") || backend.equals("vxlan-userspace");
    }

    /**
     * The node's underlay: a veth whose peer end stays in the namespace. host-gw and kernel vxlan:
     * {@code 172.16.0.1/12}, so every peer's address is on the link (host-gw routes need that). The userspace data
     * planes: {@code 10.0.0.1/24} and a route for the peers' {@code 172.16.0.0/12} via a gateway that does not exist,
     * so the probe datagrams leave the forwarder (and are counted) without one neighbour entry per peer.
     */
    private static void underlay(NetlinkRouteProgrammer nl, String backend) throws IOException {
        nl.setLinkUp("lo");
        nl.createVethPair(UNDERLAY, "eth1");
        if (userspace(backend)) {
            nl.addAddress(UNDERLAY, Ipv4Prefix.parseAddress("10.0.0.1"), 24);
        } else {
            nl.addAddress(UNDERLAY, Ipv4Prefix.parseAddress("172.16.0.1"), 12);
        }
        nl.setLinkUp("eth1");
        nl.setLinkUp(UNDERLAY);
        if (userspace(backend)) {
            nl.addRoute(Route.viaGateway(Ipv4Prefix.parse("172.16.0.0/12"), Ipv4Prefix.parseAddress("10.0.0.254"),
                    UNDERLAY));
        }
    }

    /** 100 joins and leaves per second (half each, alternating), for the configured time; returns the events. */
    private long churn(String prefix, String backend, State state, Result r) throws Exception {
        long total = (long) churnRate * churnSeconds;
        if (total == 0) {
            return 0;
        }
        long interval = 1_000_000_000L / churnRate;
        long start = System.nanoTime();
        KV kv = client.getKVClient();
        List<CompletableFuture<?>> pending = new ArrayList<>();
        AtomicLong failures = new AtomicLong();
        // A leave picks only a key whose put etcd has confirmed: a delete racing its own put could land first.
        List<Ipv4Prefix> present = java.util.Collections.synchronizedList(new ArrayList<>(state.expected.keySet()));
        long nextSample = start;
        for (long k = 0; k < total; k++) {
            long due = start + k * interval;
            long wait = due - System.nanoTime();
            if (wait > 0) {
                TimeUnit.NANOSECONDS.sleep(wait);
            }
            if (System.nanoTime() >= nextSample) {
                r.samples.add(ProcessResources.sample());
                nextSample += TimeUnit.SECONDS.toNanos(5);
            }
            CompletableFuture<?> f;
            Ipv4Prefix gone = null;
            if (k % 2 == 0) {
                synchronized (present) {
                    if (!present.isEmpty()) {
                        gone = present.remove(random.nextInt(present.size()));
                    }
                }
            }
            if (gone != null) {
                state.expected.remove(gone);
                f = kv.delete(key(prefix, gone));
            } else {
                int index = state.nextIndex++;
                Ipv4Prefix s = subnet(index);
                state.expected.put(s, index);
                f = kv.put(key(prefix, s), value(backend, index),
                        PutOption.builder().withLeaseId(state.leaseId).build()).thenRun(() -> present.add(s));
            }
            pending.add(f.whenComplete((x, e) -> {
                if (e != null) {
                    failures.incrementAndGet();
                }
            }));
            if (pending.size() >= 1000) {
                CompletableFuture.allOf(pending.toArray(new CompletableFuture<?>[0])).get(60, TimeUnit.SECONDS);
                pending.clear();
            }
        }
        CompletableFuture.allOf(pending.toArray(new CompletableFuture<?>[0])).get(60, TimeUnit.SECONDS);
        double took = seconds(start);
        r.notes.add(String.format(Locale.ROOT, "churn: %d events in %.1f s (%.0f/s), %d failed writes", total, took,
                total / took, failures.get()));
        return total;
    }

    // ---- checks ----

    /**
     * Whether what the node made equals {@code state.expected}: the listed peers, and the kernel objects (vxlan,
     * host-gw) or the forwarder's peer table (udp, probed only when {@code probe}).
     */
    private boolean programmed(NetlinkRouteProgrammer nl, NetworkNamespace host, OverlayNode node, State state,
                               boolean probe) throws Exception {
        Set<Ipv4Prefix> listed = new HashSet<>();
        for (Lease l : node.peers()) {
            listed.add(l.subnet());
        }
        if (!listed.equals(state.expected.keySet())) {
            state.lastDiff = "the node lists " + listed.size() + " peers, " + state.expected.size() + " expected";
            return false;
        }
        switch (state.backend) {
            case "udp":
            case "vxlan-userspace":
                return !probe || probe(host, node, state);
            case "vxlan": {
                Set<String> want = new TreeSet<>();
                Set<String> have = new TreeSet<>();
                for (Map.Entry<Ipv4Prefix, Integer> e : state.expected.entrySet()) {
                    String base = e.getKey().network().getHostAddress();
                    want.add("neigh " + base + " " + mac(e.getValue()));
                    want.add("fdb " + mac(e.getValue()) + " " + peerIp(e.getValue()).getHostAddress());
                    want.add("route " + e.getKey() + " via " + base + " onlink");
                }
                for (Neighbour n : nl.neighbours(DEVICE_VXLAN)) {
                    if (n.isPermanent()) {
                        have.add("neigh " + n.address().getHostAddress() + " " + n.mac());
                    }
                }
                for (FdbEntry f : nl.fdbEntries(DEVICE_VXLAN)) {
                    if (f.destination() != null && !f.mac().equals("00:00:00:00:00:00")) {
                        have.add("fdb " + f.mac() + " " + f.destination().getHostAddress());
                    }
                }
                for (Route rt : nl.routes()) {
                    if (DEVICE_VXLAN.equals(rt.device()) && rt.gateway() != null) {
                        have.add("route " + rt.destination() + " via " + rt.gateway().getHostAddress()
                                + (rt.isOnlink() ? " onlink" : ""));
                    }
                }
                return same(state, want, have);
            }
            default: {
                Set<String> want = new TreeSet<>();
                Set<String> have = new TreeSet<>();
                for (Map.Entry<Ipv4Prefix, Integer> e : state.expected.entrySet()) {
                    want.add(e.getKey() + " via " + peerIp(e.getValue()).getHostAddress());
                }
                for (Route rt : nl.routes()) {
                    if (UNDERLAY.equals(rt.device()) && rt.gateway() != null && NETWORK.contains(rt.destination())) {
                        have.add(rt.destination() + " via " + rt.gateway().getHostAddress());
                    }
                }
                return same(state, want, have);
            }
        }
    }

    /** Whether the sets are equal; if not, remembers a few differences for the timeout message. */
    private static boolean same(State state, Set<String> want, Set<String> have) {
        if (want.equals(have)) {
            return true;
        }
        List<String> diff = new ArrayList<>();
        for (String w : want) {
            if (!have.contains(w) && diff.size() < 5) {
                diff.add("missing " + w);
            }
        }
        for (String h : have) {
            if (!want.contains(h) && diff.size() < 10) {
                diff.add("extra " + h);
            }
        }
        state.lastDiff = want.size() + " wanted, " + have.size() + " present: " + diff;
        return false;
    }

    /**
     * One datagram from the node's namespace to a host in every expected subnet (each must leave the forwarder as a
     * send to its peer) and to 100 subnets that left (each must be a {@link DropReason#NO_ROUTE}).
     */
    private boolean probe(NetworkNamespace host, OverlayNode node, State state) throws Exception {
        TrafficStats before = node.stats();
        List<Ipv4Prefix> gone = new ArrayList<>();
        for (int i = FIRST_INDEX; i < state.nextIndex && gone.size() < 100; i++) {
            if (!state.expected.containsKey(subnet(i))) {
                gone.add(subnet(i));
            }
        }
        try (DatagramChannel ch = host.call(DatagramChannel::open)) {
            ByteBuffer one = ByteBuffer.allocate(1);
            for (Ipv4Prefix s : state.expected.keySet()) {
                ch.send(one.clear(), new InetSocketAddress(s.addressAt(1), 9));
            }
            for (Ipv4Prefix s : gone) {
                ch.send(one.clear(), new InetSocketAddress(s.addressAt(1), 9));
            }
        }
        long want = state.expected.size();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        TrafficStats s = node.stats();
        while (s.egressPackets() - before.egressPackets() < want
                || s.drops(DropReason.NO_ROUTE) - before.drops(DropReason.NO_ROUTE) < gone.size()) {
            if (System.nanoTime() > deadline) {
                break;
            }
            Thread.sleep(20);
            s = node.stats();
        }
        Thread.sleep(200);
        s = node.stats();
        long sent = s.egressPackets() - before.egressPackets();
        long noRoute = s.drops(DropReason.NO_ROUTE) - before.drops(DropReason.NO_ROUTE);
        log("%s probe: %d subnets -> %d sent by the forwarder; %d gone subnets -> %d NO_ROUTE", state.backend, want,
                sent,
                gone.size(), noRoute);
        return sent == want && noRoute == gone.size();
    }

    /** Whether etcd's own key set (read back) equals what the benchmark expects, besides the node's own lease. */
    private boolean matchesEtcd(String prefix, State state) throws Exception {
        List<KeyValue> kvs = client.getKVClient().get(bytes(prefix + "/subnets/"),
                GetOption.builder().isPrefix(true).build()).get(30, TimeUnit.SECONDS).getKvs();
        Set<Ipv4Prefix> inEtcd = new HashSet<>();
        for (KeyValue kv : kvs) {
            String k = kv.getKey().toString(StandardCharsets.UTF_8);
            inEtcd.add(Ipv4Prefix.fromSubnetKey(k.substring(k.lastIndexOf('/') + 1)));
        }
        inEtcd.remove(state.own);
        return inEtcd.equals(state.expected.keySet());
    }

    // ---- helpers ----

    private void put(String key, String value) throws Exception {
        client.getKVClient().put(bytes(key), bytes(value)).get(10, TimeUnit.SECONDS);
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    private static ByteSequence key(String prefix, Ipv4Prefix subnet) {
        return bytes(prefix + "/subnets/" + subnet.toSubnetKey());
    }

    private static ByteSequence value(String backend, int index) {
        LeaseAttributes a = switch (backend) {
            case "udp" -> LeaseAttributes.udp(peerIp(index));
            case "vxlan", "vxlan-userspace" -> new LeaseAttributes(peerIp(index), null, "vxlan",
                    "{\"VNI\":1,\"VtepMAC\":\"" + mac(index) + "\"}");
            default -> new LeaseAttributes(peerIp(index), null, "host-gw", null);
        };
        return bytes(a.toJson());
    }

    static Ipv4Prefix subnet(int index) {
        return Ipv4Prefix.of(NETWORK.networkInt() + (index << 8), 24);
    }

    static Inet4Address peerIp(int index) {
        return Ipv4Prefix.fromInt(PEER_IP_BASE + index);
    }

    static String mac(int index) {
        return String.format(Locale.ROOT, "02:00:00:%02x:%02x:%02x", index >> 16 & 0xff, index >> 8 & 0xff,
                index & 0xff);
    }

    private static double seconds(long since) {
        return (System.nanoTime() - since) / 1e9;
    }

    /** Polls {@code done} every 20 ms; returns the seconds it took. */
    private static double await(Check done, int seconds, String what) throws Exception {
        return await(done, seconds, () -> what);
    }

    private static double await(Check done, int seconds, java.util.function.Supplier<String> what) throws Exception {
        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(seconds);
        while (!done.get()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("timed out after " + seconds + " s waiting for " + what.get());
            }
            Thread.sleep(20);
        }
        return seconds(start);
    }

    @FunctionalInterface
    private interface Check {
        boolean get() throws Exception;
    }

    /** What the benchmark wrote: subnet → host index, for one backend's run. */
    static final class State {
        final String backend;
        final String prefix;
        final Map<Ipv4Prefix, Integer> expected = new HashMap<>();
        int nextIndex = FIRST_INDEX;
        long leaseId;
        Ipv4Prefix own;
        volatile String lastDiff = "";

        State(String backend, String prefix) {
            this.backend = backend;
            this.prefix = prefix;
        }
    }

    /** The figures of one backend's run. */
    static final class Result {
        static final String HEADER = "| backend | leases written in s | node lists all s | all programmed s "
                + "| churn events | CPU s / 1,000 events | programmed after churn s | restart: READY s "
                + "| restart: programmed s | heap after GC MiB | RSS MiB | threads | fds | final = etcd |\n"
                + "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
        final String backend;
        final List<String> notes = new ArrayList<>();
        final List<ProcessResources> samples = new ArrayList<>();
        double writeSeconds;
        double learnSeconds;
        double programSeconds;
        double lagSeconds;
        double cpuPerThousand;
        double restartReadySeconds;
        double restartProgramSeconds;
        long events;
        int peers;
        ProcessResources before;
        ProcessResources after;
        boolean etcdMatches;
        boolean finalMatches;

        Result(String backend) {
            this.backend = backend;
        }

        boolean flat() {
            return before != null && after != null && after.threads() <= before.threads() + 2
                    && after.fds() <= before.fds() + 4 && after.heapUsed() - before.heapUsed() < 16 << 20;
        }

        boolean ok() {
            return etcdMatches && finalMatches && flat() && notes.stream().noneMatch(n -> n.startsWith("failed"));
        }

        String row() {
            if (before == null || after == null) {
                return "| " + backend + " | failed: " + notes + " |";
            }
            return String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.2f | %.2f "
                            + "| %.1f -> %.1f | %.1f -> %.1f | %d -> %d | %d -> %d | %s |", backend, writeSeconds,
                    learnSeconds, programSeconds, events, cpuPerThousand, lagSeconds, restartReadySeconds,
                    restartProgramSeconds, before.heapUsed() / 1048576.0, after.heapUsed() / 1048576.0,
                    before.rssKb() / 1024.0, after.rssKb() / 1024.0, before.threads(), after.threads(), before.fds(),
                    after.fds(), etcdMatches && finalMatches ? "yes" : "NO");
        }
    }
}
