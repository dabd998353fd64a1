package io.overlay4j.internal;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

/**
 * What every backend's {@link Backend.Network} shares: the lease and MTU, a {@link #lock} under which peer changes
 * run, and the closed flag that makes peer changes after {@link #close()} no-ops and {@code close()} idempotent.
 * Subclasses implement {@link #applyPeers}, {@link #replacePeers} (both called with {@link #lock} held and only while
 * open) and {@link #release} (called once, without the lock).
 */
public abstract class AbstractNetwork implements Backend.Network {
    /** Guards the subclass's peer state and the closed flag. */
    protected final Object lock = new Object();
    private final int mtu;
    private Lease lease;
    private boolean closed;

    /** @param mtu the MTU for containers, as {@link #mtu()} returns it */
    protected AbstractNetwork(int mtu) {
        this.mtu = mtu;
    }

    /** Acquires the node's lease through {@code context} and keeps it as {@link #lease()}. */
    protected final Lease acquireLease(Backend.Context context, LeaseAttributes attributes) throws IOException {
        Lease l = context.acquireLease(attributes);
        this.lease = l;
        return l;
    }

    @Override
    public final Lease lease() {
        return lease;
    }

    @Override
    public final int mtu() {
        return mtu;
    }

    @Override
    public final void peersChanged(List<LeaseEvent> events) {
        synchronized (lock) {
            if (!closed) {
                applyPeers(events);
            }
        }
    }

    @Override
    public final void resetPeers(List<Lease> peers) {
        synchronized (lock) {
            if (!closed) {
                replacePeers(peers);
            }
        }
    }

    /** Marks the network closed (later peer changes are ignored) and, the first time only, calls {@link #release}. */
    @Override
    public final void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        release();
    }

    /** Whether {@link #close()} was called; the caller holds {@link #lock}. */
    protected final boolean isClosed() {
        return closed;
    }

    /** {@link #peersChanged} while open, with {@link #lock} held. */
    protected abstract void applyPeers(List<LeaseEvent> events);

    /** {@link #resetPeers} while open, with {@link #lock} held. */
    protected abstract void replacePeers(List<Lease> peers);

    /** Undoes the setup; called once by the first {@link #close()}, after the network was marked closed. */
    protected abstract void release();

    /** The {@code (lease's subnet)} {@code toString} part, {@code ?} before the lease is acquired. */
    protected final String leaseText() {
        return lease == null ? "?" : lease.subnet().toString();
    }

    /** Hands each event to {@code added} (the new lease) or {@code removed} (its subnet), in order. */
    protected static void dispatch(List<LeaseEvent> events, Consumer<Lease> added, Consumer<Ipv4Prefix> removed) {
        for (LeaseEvent e : events) {
            if (e.type() == LeaseEvent.Type.ADDED) {
                added.accept(e.lease());
            } else {
                removed.accept(e.lease().subnet());
            }
        }
    }

    /**
     * Calls {@code remove} for every subnet in {@code have} (a copy is iterated, so {@code remove} may change it) that
     * none of {@code peers} holds.
     *
     * @return the subnets of {@code peers}
     */
    protected static Set<Ipv4Prefix> removeMissing(Collection<Ipv4Prefix> have, List<Lease> peers,
                                                   Consumer<Ipv4Prefix> remove) {
        Set<Ipv4Prefix> want = new HashSet<>();
        for (Lease l : peers) {
            want.add(l.subnet());
        }
        for (Ipv4Prefix s : new ArrayList<>(have)) {
            if (!want.contains(s)) {
                remove.accept(s);
            }
        }
        return want;
    }
}
