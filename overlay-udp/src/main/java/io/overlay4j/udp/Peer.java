package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import java.net.Inet4Address;
import java.net.InetSocketAddress;

/**
 * One entry of a {@link PeerTable}: a peer's subnet and the UDP endpoint that receives its traffic. The endpoint is
 * created once, when the peer enters a table, and then reused for every packet sent to it, so sending allocates
 * nothing. Immutable.
 */
public final class Peer {
    private final Ipv4Prefix subnet;
    private final InetSocketAddress endpoint;
    private final Lease lease;
    private final int address;

    /**
     * A peer for a lease: {@code lease.attributes().publicIp()} at {@code port}, owning {@code lease.subnet()}.
     *
     * @param port the UDP port all nodes of the network listen on (flannel leases do not carry one), 1..65535
     */
    public static Peer of(Lease lease, int port) {
        requireNonNull(lease, "lease");
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("UDP port must be 1..65535: " + port);
        }
        return new Peer(lease.subnet(), new InetSocketAddress(lease.attributes().publicIp(), port), lease);
    }

    Peer(Ipv4Prefix subnet, InetSocketAddress endpoint, Lease lease) {
        this.subnet = subnet;
        this.endpoint = endpoint;
        this.lease = lease;
        this.address = Ipv4Prefix.toInt((Inet4Address) endpoint.getAddress());
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

    /** e.g. {@code 100.96.2.0/24 -> 10.168.0.3:8285}. */
    @Override
    public String toString() {
        return subnet + " -> " + endpoint.getAddress().getHostAddress() + ":" + endpoint.getPort();
    }
}
