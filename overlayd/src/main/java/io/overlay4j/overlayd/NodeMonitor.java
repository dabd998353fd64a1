package io.overlay4j.overlayd;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.SubnetAllocator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What overlayd reports about its node: the info lines (subnet acquired, renewed, lost; each peer added and removed)
 * and readiness ({@code /readyz}): ready once the traffic rules are in and subnet.env is written, not ready while etcd
 * is unreachable or the lease is being re-acquired.
 *
 * <p>It learns all of it by standing between the node and its allocator ({@link #wrap}): the results of
 * {@code acquire} and {@code renew}, the watch's snapshots, events and errors, and a {@link #probe} of etcd (every few
 * seconds while it is unreachable, since the watch resumes silently after an outage; rarely otherwise).
 *
 * <p>Its inputs are the node's events under other names, so that a node that reports them itself can drive it:
 * {@link #reachable}/{@link #unreachable} are READY/DEGRADED (store unreachable, lease held), {@code lost} is
 * LEASE_LOST, {@code acquired} of another subnet is a subnet change, {@code added}/{@code logRemoved} are peers added
 * and removed, the {@code renew} result is a renewal.
 */
final class NodeMonitor {
    private static final Logger log = LoggerFactory.getLogger("overlayd");

    private final RateLimitedLog warnings = new RateLimitedLog(log, 30_000);
    private final Consumer<String> onSubnetChanged;
    private final Map<Ipv4Prefix, Lease> peers = new TreeMap<>();
    private volatile boolean started;
    private volatile boolean storeReachable = true;
    private volatile boolean leaseLost;
    private volatile Ipv4Prefix subnet;
    private boolean wasReady;

    /** {@code onSubnetChanged} gets a message when a re-acquired lease has another subnet than before. */
    NodeMonitor(Consumer<String> onSubnetChanged) {
        this.onSubnetChanged = onSubnetChanged;
    }

    /** Whether {@code /readyz} says ready. */
    boolean ready() {
        return started && storeReachable && !leaseLost;
    }

    /** Whether etcd answered the last call made through the monitor (or its probe). */
    boolean storeReachable() {
        return storeReachable;
    }

    /** The rules are in and subnet.env is written. */
    void started() {
        started = true;
        changed();
    }

    /** The current subnet, or null before the first lease. */
    Ipv4Prefix subnet() {
        return subnet;
    }

    /** Logged when readiness flips, so the log tells why {@code /readyz} says what it says. */
    private synchronized void changed() {
        boolean now = ready();
        if (now == wasReady) {
            return;
        }
        wasReady = now;
        if (now) {
            log.info("overlayd is ready");
        } else {
            log.warn("overlayd is not ready: {}", !storeReachable ? "etcd is unreachable"
                    : leaseLost ? "the lease is being re-acquired" : "starting");
        }
    }

    void reachable() {
        if (!storeReachable) {
            storeReachable = true;
            warnings.reset();
            log.info("etcd is reachable again");
            changed();
        }
    }

    void unreachable(Throwable e) {
        warnings.warn("etcd is unreachable: " + e.getMessage());
        if (storeReachable) {
            storeReachable = false;
            changed();
        }
    }

    /** Asks etcd for the network config; any answer (even "no config") means it is reachable. */
    void probe(SubnetAllocator allocator) {
        try {
            allocator.networkConfig();
            reachable();
        } catch (OverlayException e) {
            if (e.kind() == OverlayException.Kind.STORE_UNAVAILABLE) {
                unreachable(e);
            } else {
                reachable();
            }
        } catch (RuntimeException e) {
            unreachable(e);
        }
    }

    private void acquired(Lease lease) {
        reachable();
        Ipv4Prefix before = subnet;
        subnet = lease.subnet();
        if (before == null) {
            log.info("acquired lease: subnet {} for {}", lease.subnet(),
                    lease.attributes().publicIp().getHostAddress());
        } else if (before.equals(lease.subnet())) {
            log.info("re-acquired lease: subnet {}", lease.subnet());
        } else {
            String message = "the subnet changed from " + before + " to " + lease.subnet()
                    + " (the old one was taken); containers addressed from the old subnet must be restarted";
            log.error(message);
            onSubnetChanged.accept(message);
        }
        if (leaseLost) {
            leaseLost = false;
            changed();
        }
    }

    private void lost(String why) {
        log.warn("lease {} lost ({}); re-acquiring", subnet, why);
        if (!leaseLost) {
            leaseLost = true;
            changed();
        }
    }

    private synchronized void snapshot(List<Lease> leases) {
        Map<Ipv4Prefix, Lease> now = new HashMap<>();
        boolean ownSeen = false;
        for (Lease l : leases) {
            if (l.subnet().equals(subnet)) {
                ownSeen = true;
            } else {
                now.put(l.subnet(), l);
            }
        }
        for (Lease gone : List.copyOf(peers.values())) {
            if (!now.containsKey(gone.subnet())) {
                peers.remove(gone.subnet());
                logRemoved(gone);
            }
        }
        for (Lease l : now.values()) {
            added(l);
        }
        if (subnet != null && !ownSeen) {
            lost("missing from etcd");
        }
    }

    private synchronized void events(List<LeaseEvent> events) {
        for (LeaseEvent e : events) {
            Lease l = e.lease();
            if (l.subnet().equals(subnet)) {
                if (e.type() == LeaseEvent.Type.REMOVED) {
                    lost("removed from etcd");
                }
                continue;
            }
            if (e.type() == LeaseEvent.Type.ADDED) {
                added(l);
            } else if (peers.remove(l.subnet()) != null) {
                logRemoved(l);
            }
        }
    }

    private void added(Lease l) {
        Lease before = peers.put(l.subnet(), l);
        LeaseAttributes a = l.attributes();
        if (before == null) {
            log.info("peer added: subnet {} at {} ({})", l.subnet(), a.publicIp().getHostAddress(), type(a));
        } else if (!before.attributes().equals(a)) {
            log.info("peer changed: subnet {} now at {} ({})", l.subnet(), a.publicIp().getHostAddress(),
                    type(a));
        }
    }

    private static String type(LeaseAttributes a) {
        return a.backendType() == null ? "udp" : a.backendType();
    }

    private static void logRemoved(Lease l) {
        log.info("peer removed: subnet {} at {}", l.subnet(), l.attributes().publicIp().getHostAddress());
    }

    /** The allocator as the node should see it: every call and watch callback reported here first. */
    SubnetAllocator wrap(SubnetAllocator allocator) {
        return new SubnetAllocator() {
            @Override
            public NetworkConfig networkConfig() {
                return observe(allocator::networkConfig);
            }

            @Override
            public Lease acquire(LeaseAttributes attributes, Ipv4Prefix previousSubnet) {
                Lease l = observe(() -> allocator.acquire(attributes, previousSubnet));
                acquired(l);
                return l;
            }

            @Override
            public Lease renew(Lease lease) {
                try {
                    Lease l = observe(() -> allocator.renew(lease));
                    log.info("renewed lease: subnet {} until {}", l.subnet(), l.expiration());
                    return l;
                } catch (OverlayException e) {
                    if (e.kind() == OverlayException.Kind.LEASE_LOST) {
                        lost(e.getMessage());
                    }
                    throw e;
                }
            }

            @Override
            public void release(Lease lease) {
                allocator.release(lease);
            }

            @Override
            public List<Lease> leases() {
                return observe(allocator::leases);
            }

            @Override
            public Watch watch(LeaseListener listener) {
                return allocator.watch(new LeaseListener() {
                    @Override
                    public void onSnapshot(List<Lease> leases) {
                        reachable();
                        snapshot(leases);
                        listener.onSnapshot(leases);
                    }

                    @Override
                    public void onEvents(List<LeaseEvent> events) {
                        reachable();
                        events(events);
                        listener.onEvents(events);
                    }

                    @Override
                    public void onError(Throwable error) {
                        boolean first = storeReachable;
                        unreachable(error);
                        if (first) {
                            // The node only logs it: pass the first error of an outage on, not every retry's.
                            listener.onError(error);
                        }
                    }
                });
            }

            @Override
            public void close() {
                allocator.close();
            }
        };
    }

    private <T> T observe(java.util.function.Supplier<T> call) {
        try {
            T t = call.get();
            reachable();
            return t;
        } catch (OverlayException e) {
            if (e.kind() == OverlayException.Kind.STORE_UNAVAILABLE) {
                unreachable(e);
            } else if (e.kind() != OverlayException.Kind.LEASE_LOST) {
                reachable();
            }
            throw e;
        }
    }
}
