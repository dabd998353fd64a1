package io.overlay4j.examples;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.vxlan.VxlanBackend;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * One overlay4j node on the embedded file allocator or on etcd, run in the current network namespace until SIGTERM;
 * used by {@code overlay-bench/e2e.sh} and {@code overlay-bench/soak.sh} (one process per host, started with
 * {@code ip netns exec}).
 *
 * <pre>
 * OverlayHostMain --network 100.96.0.0/16 --allocator-file /tmp/leases.json --iface eth0
 *                 [--public-ip 10.168.0.2] [--subnet-file /run/flannel/subnet.env] [--prefer-subnet 100.96.1.0/24]
 *                 [--backend udp|vxlan|host-gw] [--vxlan-dataplane=kernel|userspace|auto] [--offloads=true|false]
 * OverlayHostMain --etcd-endpoints http://10.168.0.10:2379 [--etcd-prefix /coreos.com/network] --iface eth0 ...
 * </pre>
 * With etcd the network config is etcd's (its {@code Backend.Type} should match {@code --backend}), and the node keeps
 * retrying while etcd is unreachable at start. On SIGTERM the lease is released; if the store cannot be reached then,
 * the node still exits 0 (the lease expires by its TTL).
 * {@code --vxlan-dataplane} picks the vxlan backend's data plane (default the kernel's). Offloads are on by default
 * for the userspace data planes (udp, userspace vxlan; as in their backends); {@code --offloads=false} runs the plain
 * data path.
 * Prints {@code READY} once the backend's device and routes are up and peers are being followed; on SIGTERM it prints
 * the node's counters, removes what its backend made (also the kernel backends' device and routes) and exits 0.
 */
public final class OverlayHostMain {
    private OverlayHostMain() {
    }

    /** Runs the node. */
    public static void main(String[] args) throws Exception {
        String network = null;
        String allocatorFile = null;
        String iface = null;
        String publicIp = null;
        String subnetFile = null;
        String prefer = null;
        String etcd = null;
        String etcdPrefix = null;
        boolean offloads = true;
        boolean offloadsGiven = false;
        BackendChoice backend = BackendChoice.UDP;
        VxlanBackend.DataPlane dataPlane = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--offloads") || args[i].equals("--offloads=true")) {
                offloads = true;
                offloadsGiven = true;
                continue;
            }
            if (args[i].equals("--offloads=false") || args[i].equals("--no-offloads")) {
                offloads = false;
                offloadsGiven = true;
                continue;
            }
            if (args[i].startsWith("--vxlan-dataplane=")) {
                try {
                    dataPlane = BackendChoice.vxlanDataPlane(args[i].substring("--vxlan-dataplane=".length()));
                } catch (IllegalArgumentException e) {
                    usage(e.getMessage());
                }
                continue;
            }
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--network" -> network = v;
                case "--allocator-file" -> allocatorFile = v;
                case "--iface" -> iface = v;
                case "--public-ip" -> publicIp = v;
                case "--subnet-file" -> subnetFile = v;
                case "--prefer-subnet" -> prefer = v;
                case "--etcd-endpoints" -> etcd = v;
                case "--etcd-prefix" -> etcdPrefix = v;
                case "--backend" -> {
                    try {
                        backend = BackendChoice.parse(v == null ? "" : v);
                    } catch (IllegalArgumentException e) {
                        usage(e.getMessage());
                    }
                }
                case "--vxlan-dataplane" -> {
                    try {
                        dataPlane = BackendChoice.vxlanDataPlane(v);
                    } catch (IllegalArgumentException e) {
                        usage(e.getMessage());
                    }
                }
                default -> usage("unknown option " + args[i]);
            }
            if (v == null) {
                usage("option " + args[i] + " needs a value");
            }
            i++;
        }
        if ((etcd == null) == (network == null || allocatorFile == null)) {
            usage("either --network and --allocator-file, or --etcd-endpoints");
        }
        try {
            backend.check(offloadsGiven, dataPlane);
        } catch (IllegalArgumentException e) {
            usage(e.getMessage());
        }
        SubnetAllocator allocator;
        if (etcd != null) {
            EtcdSubnetAllocator.Builder eb = EtcdSubnetAllocator.builder().endpoints(etcd.split(","));
            if (etcdPrefix != null) {
                eb.prefix(etcdPrefix);
            }
            allocator = eb.build();
        } else {
            NetworkConfig config = NetworkConfig.parse(backend.config(network));
            allocator = LocalSubnetAllocator.builder().file(Path.of(allocatorFile)).network(config).build();
        }
        OverlayNode.Builder b = OverlayNode.builder().allocator(allocator)
                .backend(backend.create(offloads, dataPlane))
                .releaseOnClose(true).subnetFile(subnetFile == null ? null : Path.of(subnetFile));
        if (iface != null) {
            b.underlayInterface(iface);
        }
        if (publicIp != null) {
            b.publicAddress(Ipv4Prefix.parseAddress(publicIp));
        }
        if (prefer != null) {
            b.preferredSubnet(Ipv4Prefix.parse(prefer));
        }
        OverlayNode node = etcd != null ? b.build().startAsync().join() : b.build().start();
        CountDownLatch stop = new CountDownLatch(1);
        // SIGTERM/SIGINT end the node cleanly with status 0 (a shutdown hook alone would exit 143).
        sun.misc.SignalHandler onSignal = s -> stop.countDown();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
        System.out.println("READY subnet " + node.lease().subnet() + " mtu " + node.mtu());
        System.out.flush();
        stop.await();
        System.out.println("stats " + node.stats());
        try {
            node.close();
        } catch (OverlayException e) {
            // The device and routes are gone; only the lease could not be released (the store is unreachable): it
            // expires with its TTL, as every flanneld lease does.
            System.err.println("closed, but " + e.getMessage());
        }
        allocator.close();
    }

    private static void usage(String problem) {
        System.err.println(problem);
        System.err.println("usage: OverlayHostMain (--network CIDR --allocator-file FILE | --etcd-endpoints URLS "
                + "[--etcd-prefix PATH]) [--iface NAME] [--public-ip IP] [--subnet-file FILE] [--prefer-subnet CIDR] "
                + "[--backend udp|vxlan|host-gw] [--vxlan-dataplane=kernel|userspace|auto] [--offloads=true|false]");
        System.exit(2);
    }
}
