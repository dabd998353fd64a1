package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.PeerStats;
import io.overlay4j.udp.internal.PeerCounters;
import java.net.Inet4Address;
import java.net.InetSocketAddress;

/**
 * One entry of a {@link PeerTable}: a peer's subnet, the UDP endpoint that receives its traffic and what the
 * encapsulation needs to reach it ({@link Encapsulator#peerContext}). All of it is computed once, when the peer enters
 * a table, and then reused for every packet sent to it, so sending allocates nothing. Immutable, except for the
 * traffic counters behind {@link #stats()}, which the data plane updates and which pass from a peer to its successor
 * for the same subnet when a table is rebuilt ({@link PeerTable.Builder#put}).
 */
public final class Peer {
    static {
        PeerCounters.access(peer -> peer.counters);
    }

    private final Ipv4Prefix subnet;
    private final InetSocketAddress endpoint;
    private final Lease lease;
    private final int address;
    private final Object context;
    private final PeerCounters counters;

    /**
     * A flannel-udp peer for a lease: {@code lease.attributes().publicIp()} at {@code port}, owning
     * {@code lease.subnet()}.
     *
     * @param port the UDP port all nodes of the network listen on (flannel leases do not carry one), 1..65535
     */
    public static Peer of(Lease lease, int port) {
        return of(lease, port, FlannelUdpEncapsulator.INSTANCE);
    }

    /**
     * A peer for a lease, reached with {@code encapsulator}.
     *
     * @throws IllegalArgumentException if the port is out of range or the encapsulator cannot use the lease
     */
    public static Peer of(Lease lease, int port, Encapsulator encapsulator) {
        requireNonNull(lease, "lease");
        requireNonNull(encapsulator, "encapsulator");
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("UDP port must be 1..65535: " + port);
        }
        Object context = requireNonNull(encapsulator.peerContext(lease), "peer context");
        return new Peer(lease.subnet(), new InetSocketAddress(lease.attributes().publicIp(), port), lease, context,
                new PeerCounters());
    }

    Peer(Ipv4Prefix subnet, InetSocketAddress endpoint, Lease lease, Object context, PeerCounters counters) {
        this.subnet = subnet;
        this.endpoint = endpoint;
        this.lease = lease;
        this.address = Ipv4Prefix.toInt((Inet4Address) endpoint.getAddress());
        this.context = context;
        this.counters = counters;
    }

    /** The same peer with another lease, endpoint and context, keeping its counters (same subnet). */
    Peer successor(InetSocketAddress endpoint, Lease lease, Object context) {
        return new Peer(subnet, endpoint, lease, context, counters);
    }

    /** The subnet the peer owns, e.g. {@code 100.96.2.0/24}. */
    public Ipv4Prefix subnet() {
        return subnet;
    }

    /** Where its traffic goes: its public address and the network's port; resolved, never null. */
    public InetSocketAddress endpoint() {
        return endpoint;
    }

    /** The endpoint's IPv4 address as an int in network order, for allocation-free sends. */
    public int address() {
        return address;
    }

    /** The endpoint's UDP port. */
    public int port() {
        return endpoint.getPort();
    }

    /** The lease the entry was made from. */
    public Lease lease() {
        return lease;
    }

    /** What the table's encapsulator computed for this peer ({@link Encapsulator#peerContext}); opaque. */
    public Object context() {
        return context;
    }

    /**
     * The traffic exchanged with this peer so far: packets sent to it, packets received from it and admitted, and
     * when the last of those arrived. Counting starts when the subnet enters a table and goes on in the tables built
     * from it.
     */
    public PeerStats stats() {
        return counters.snapshot(subnet);
    }

    /** e.g. {@code 100.96.2.0/24 -> 10.168.0.3:8285}. */
    @Override
    public String toString() {
        return subnet + " -> " + endpoint.getAddress().getHostAddress() + ":" + endpoint.getPort();
    }
}
