package io.overlay4j.hostgw;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.internal.AbstractNetwork;
import io.overlay4j.internal.WarnOnce;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.NetlinkMonitor;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.internal.KernelWatch;
import java.io.IOException;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link HostGwBackend}'s network for one lease: one route per peer. Peer changes arrive on the node's control thread;
 * restores (a route deleted, the interface back up, the periodic check) run on this network's own thread; both under
 * {@link #lock}. Its MTU is the interface's: nothing is added to packets.
 */
final class HostGwNetwork extends AbstractNetwork {
    private static final Logger LOG = LoggerFactory.getLogger(HostGwNetwork.class);

    private final HostGwBackend backend;
    private final Ipv4Prefix network;
    private final String iface;
    private final NetlinkRouteProgrammer nl;
    /** The route of every peer, installed or still to install (flannel's route list). */
    private final Map<Ipv4Prefix, Route> routes = new TreeMap<>();
    private final WarnOnce warnings = new WarnOnce(LOG);
    private KernelWatch watch;
    private boolean checkQueued;

    private HostGwNetwork(HostGwBackend backend, Backend.Context context, NetlinkRouteProgrammer nl) {
        super(context.interfaceMtu());
        this.backend = backend;
        this.network = context.config().network();
        this.iface = context.interfaceName();
        this.nl = nl;
    }

    static HostGwNetwork register(HostGwBackend backend, Backend.Context context, LeaseAttributes attributes)
            throws IOException {
        NetlinkRouteProgrammer nl = NetlinkRouteProgrammer.open();
        HostGwNetwork n = new HostGwNetwork(backend, context, nl);
        try {
            nl.linkIndex(n.iface); // fails early, naming the interface, if it is gone
            Lease lease = n.acquireLease(context, attributes);
            // The checks run on a thread of their own from the node's factory (so in the node's network namespace).
            n.watch = KernelWatch.start("route check thread of " + n.iface, context.threadFactory());
            long every = backend.checkInterval.toMillis();
            n.watch.worker().scheduleWithFixedDelay(n::check, every, every, TimeUnit.MILLISECONDS);
            n.watch.follow("overlay4j-host-gw-monitor-" + n.iface,
                    EnumSet.of(NetlinkMonitor.Group.LINK, NetlinkMonitor.Group.IPV4_ROUTE), n.new KernelListener(),
                    context.threadFactory());
            LOG.info("host-gw backend up on {} (MTU {}), subnet {}", n.iface, n.mtu(), lease.subnet());
            return n;
        } catch (IOException | RuntimeException | Error e) {
            KernelWatch.shutDown(n.watch, () -> { }, nl);
            throw e;
        }
    }

    @Override
    protected void applyPeers(List<LeaseEvent> events) {
        dispatch(events, this::add, this::remove);
    }

    @Override
    protected void replacePeers(List<Lease> peers) {
        removeMissing(routes.keySet(), peers, this::remove);
        for (Lease l : peers) {
            add(l);
        }
        try {
            for (Route r : nl.routes()) {
                if (r.device().equals(iface) && r.gateway() != null && !r.kernel()
                        && network.contains(r.destination()) && !r.destination().equals(network)
                        && !routes.containsKey(r.destination())) {
                    LOG.info("removing stale route {}", r);
                    deleteQuietly(r);
                }
            }
        } catch (IOException | RuntimeException e) {
            LOG.warn("cannot clean up stale routes via {}: {}", iface, e.toString());
        }
    }

    int peerCount() {
        synchronized (lock) {
            return routes.size();
        }
    }

    /** {@inheritDoc} All zeros: host-gw has no device of its own; traffic is counted on the interface. */
    @Override
    public TrafficStats stats() {
        return new TrafficStats(0, 0, 0, 0, 0, Map.of());
    }

    /** Stops following peers; deletes the routes only if the backend was built with {@code cleanUpOnClose}. */
    @Override
    protected void release() {
        KernelWatch.shutDown(watch, this::finish, nl);
    }

    private void finish() {
        synchronized (lock) {
            if (backend.cleanUpOnClose) {
                for (Route r : routes.values()) {
                    deleteQuietly(r);
                }
                LOG.info("removed {} routes via {}", routes.size(), iface);
            } else {
                LOG.info("left {} routes via {} in place (as flanneld does)", routes.size(), iface);
            }
            routes.clear();
        }
    }

    @Override
    public String toString() {
        return "host-gw network via " + iface + " lease " + leaseText();
    }

    // ---- peers ---------------------------------------------------------------------------------------------

    private void add(Lease peer) {
        Ipv4Prefix subnet = peer.subnet();
        LeaseAttributes a = peer.attributes();
        if (!HostGwBackend.TYPE.equals(a.backendType())) {
            backend.ignored.incrementAndGet();
            warnings.warn("type " + subnet + " " + a.backendType(), "Ignoring non-host-gw subnet {} at {}: type={}",
                    subnet, a.publicIp().getHostAddress(), a.backendType());
            remove(subnet);
            return;
        }
        Route route = Route.viaGateway(subnet, a.publicIp(), iface);
        Route old = routes.put(subnet, route);
        if (old != null && !same(old, route)) {
            deleteQuietly(old);
        }
        LOG.info("Subnet added: {} via {}", subnet, a.publicIp().getHostAddress());
        try {
            ensure(route, nl.routes());
        } catch (IOException | RuntimeException e) {
            backend.failures.incrementAndGet();
            LOG.warn("Error adding route to {}: {}; retrying", route, e.toString());
            queueCheck();
        }
    }

    private void remove(Ipv4Prefix subnet) {
        Route r = routes.remove(subnet);
        if (r != null) {
            LOG.info("Subnet removed: {}", subnet);
            deleteQuietly(r);
        }
    }

    /**
     * flannel's {@code routeAdd}: deletes routes to the same destination with another gateway or device, then adds
     * the route unless an identical one is there.
     *
     * @param current the kernel's routes, dumped once for a whole check
     * @return whether the route had to be added
     */
    private boolean ensure(Route route, List<Route> current) throws IOException {
        boolean present = false;
        for (Route r : current) {
            if (!r.destination().equals(route.destination())) {
                continue;
            }
            if (same(r, route)) {
                present = true;
            } else {
                LOG.warn("Replacing existing route to {} with {}", r, route);
                nl.deleteRoute(r);
                backend.replaced.incrementAndGet();
            }
        }
        if (!present) {
            nl.addRoute(route);
        }
        return !present;
    }

    /** flannel's {@code routeEqual}: destination, gateway and device. */
    private static boolean same(Route a, Route b) {
        return a.destination().equals(b.destination()) && Objects.equals(a.gateway(), b.gateway())
                && a.device().equals(b.device());
    }

    private void deleteQuietly(Route r) {
        try {
            nl.deleteRoute(r);
        } catch (IOException | RuntimeException e) {
            backend.failures.incrementAndGet();
            LOG.warn("Error deleting route to {}: {}", r.destination(), e.toString());
        }
    }

    // ---- restoring -----------------------------------------------------------------------------------------

    /** Reacts to the kernel: only queues a check on the check thread. */
    private final class KernelListener implements NetlinkMonitor.Listener {
        @Override
        public void routeDeleted(Route route) {
            if (routesTo(route.destination(), null)) {
                queueCheck();
            }
        }

        @Override
        public void routeAdded(Route route) {
            if (routesTo(route.destination(), route)) {
                queueCheck(); // someone replaced ours: the check puts ours back
            }
        }

        @Override
        public void linkChanged(Link link) {
            if (link.name().equals(iface) && link.isUp()) {
                queueCheck(); // routes via a device that went down were flushed without notice
            }
        }

        @Override
        public void eventsLost() {
            queueCheck();
        }
    }

    /** Whether we route {@code destination}, by another route than {@code except} if that is given. */
    private boolean routesTo(Ipv4Prefix destination, Route except) {
        synchronized (lock) {
            Route mine = routes.get(destination);
            return mine != null && (except == null || !same(mine, except));
        }
    }

    private void queueCheck() {
        synchronized (lock) {
            if (isClosed() || checkQueued) {
                return;
            }
            checkQueued = true;
        }
        try {
            watch.worker().execute(this::check);
        } catch (RejectedExecutionException e) {
            // closing
        }
    }

    /** flannel's {@code checkSubnetExistInV4Routes}, also replacing conflicting routes. */
    private void check() {
        synchronized (lock) {
            checkQueued = false;
            if (isClosed() || routes.isEmpty()) {
                return;
            }
            List<Route> current;
            try {
                current = nl.routes();
            } catch (IOException | RuntimeException e) {
                backend.failures.incrementAndGet();
                LOG.warn("Error fetching route list. Will automatically retry: {}", e.toString());
                return;
            }
            for (Route route : routes.values()) {
                try {
                    if (ensure(route, current)) {
                        backend.restored.incrementAndGet();
                        LOG.info("Route recovered {} : {}", route.destination(), route.gateway().getHostAddress());
                    }
                } catch (IOException | RuntimeException e) {
                    backend.failures.incrementAndGet();
                    LOG.warn("Error recovering route to {}: {}", route, e.toString());
                }
            }
        }
    }
}
