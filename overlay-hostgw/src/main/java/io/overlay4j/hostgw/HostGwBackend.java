package io.overlay4j.hostgw;

import io.overlay4j.Backend;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/**
 * flannel's {@code host-gw} backend: no encapsulation, every peer's subnet is routed via the peer's public address
 * on the underlay interface, so all nodes must share one L2 network.
 *
 * <p>As flanneld does (flannel-facts §5, {@code pkg/backend/hostgw/hostgw.go} and {@code pkg/backend/route_network.go}
 * in flannel's source): {@link #register} refuses a public address other than the interface's (NAT) with flannel's
 * message; publishes {@code {"PublicIP":"…","PublicIPv6":null,"BackendType":"host-gw"}}; the MTU for containers is the
 * interface's. For every peer whose lease is of type host-gw it adds {@code <subnet> via <PublicIP> dev <iface>}: a
 * route to the same destination with another gateway or device is deleted first, an identical one left alone. A
 * removed lease deletes its route; leases of other types are ignored.
 *
 * <p>Beyond flanneld: a route deleted by hand, or flushed with the interface, is put back at once (a
 * {@code NetlinkMonitor} follows route and link notifications) instead of at flanneld's next 10 s check, which is
 * kept as a safety net; a resync (the first peer list, or after the store lost events) also removes routes into the
 * network via the interface that no current peer explains.
 *
 * <p><b>Closing</b> follows flanneld by default: the routes stay, so traffic keeps flowing while the node restarts.
 * {@link Builder#cleanUpOnClose(boolean)} deletes them instead.
 */
public final class HostGwBackend implements Backend {
    /** The backend type name. */
    public static final String TYPE = "host-gw";
    /** flanneld's refusal when the public address is not the interface's, word for word. */
    public static final String NAT_MESSAGE = "your PublicIP differs from interface IP, meaning that probably you're on "
            + "a NAT, which is not supported by host-gw backend";

    /**
     * What the backend has done with peers, over all networks it registered.
     *
     * @param peers         peers whose route is installed
     * @param ignoredLeases leases of another backend type ignored, counted per lease event
     * @param replaced      conflicting routes (same destination, another gateway or device) deleted
     * @param restored      routes put back after they vanished from the kernel
     * @param failures      kernel requests that failed (each retried later)
     */
    public record Stats(int peers, long ignoredLeases, long replaced, long restored, long failures) {
    }

    final boolean cleanUpOnClose;
    final Duration checkInterval;
    final AtomicLong ignored = new AtomicLong();
    final AtomicLong replaced = new AtomicLong();
    final AtomicLong restored = new AtomicLong();
    final AtomicLong failures = new AtomicLong();
    private volatile HostGwNetwork current;

    private HostGwBackend(Builder b) {
        this.cleanUpOnClose = b.cleanUpOnClose;
        this.checkInterval = b.checkInterval;
    }

    /** A builder; every option has a default (flanneld's behaviour). */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code host-gw}. */
    @Override
    public String type() {
        return TYPE;
    }

    /**
     * {@inheritDoc}
     *
     * @throws OverlayException {@code CONFIG_INVALID} with flanneld's message if the public address is not the
     *                          interface's
     */
    @Override
    public Network register(Context context) throws IOException {
        if (!context.publicAddress().equals(context.interfaceAddress())) {
            throw new OverlayException(OverlayException.Kind.CONFIG_INVALID, NAT_MESSAGE);
        }
        HostGwNetwork network = HostGwNetwork.register(this, context,
                new LeaseAttributes(context.publicAddress(), null, TYPE, null));
        current = network;
        return network;
    }

    /** The counters, with the peer count of the network registered last. */
    public Stats stats() {
        HostGwNetwork n = current;
        return new Stats(n == null ? 0 : n.peerCount(), ignored.get(), replaced.get(), restored.get(),
                failures.get());
    }

    @Override
    public String toString() {
        return "HostGwBackend[" + (cleanUpOnClose ? "clean up on close]" : "routes kept on close]");
    }

    /** Builds a {@link HostGwBackend}. */
    public static final class Builder {
        private boolean cleanUpOnClose;
        private Duration checkInterval = Duration.ofSeconds(10);

        private Builder() {
        }

        /**
         * Whether closing the network deletes the peers' routes. Default false: flanneld leaves them, so a restart
         * does not interrupt traffic.
         */
        public Builder cleanUpOnClose(boolean cleanUpOnClose) {
            this.cleanUpOnClose = cleanUpOnClose;
            return this;
        }

        /**
         * How often every route is checked besides the notifications that restore a deleted one at once; default
         * 10 s, flanneld's only check.
         */
        public Builder checkInterval(Duration checkInterval) {
            if (checkInterval.isNegative() || checkInterval.isZero()) {
                throw new IllegalArgumentException("check interval must be positive: " + checkInterval);
            }
            this.checkInterval = checkInterval;
            return this;
        }

        /** Builds the backend. */
        public HostGwBackend build() {
            return new HostGwBackend(this);
        }
    }
}
