package io.overlay4j.udp;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;

/**
 * What every received datagram goes through before its inner packet may enter the TUN device, in both data planes:
 * decapsulation (validation, TTL) and, unless turned off, the check that the inner source lies in the overlay network.
 * Stateless and allocation-free.
 */
final class IngressCheck {
    private final Encapsulator encapsulator;
    private final int mtu;
    private final boolean sourceCheck;
    private final int networkAddress;
    private final int networkMask;

    /** @param network the overlay range, or null for no source check */
    IngressCheck(Encapsulator encapsulator, int mtu, Ipv4Prefix network, boolean sourceCheck) {
        this.encapsulator = encapsulator;
        this.mtu = mtu;
        this.sourceCheck = network != null && sourceCheck;
        this.networkAddress = network == null ? 0 : network.networkInt();
        this.networkMask = network == null ? 0 : network.maskInt();
    }

    /**
     * Decapsulates the datagram in {@code [position, limit)} in place and checks its inner source.
     *
     * @return null if the inner packet (now in {@code [position, limit)}) may be written, else why it is dropped
     */
    DropReason check(ByteBuffer datagram) {
        DropReason reason = encapsulator.decapsulate(datagram, mtu);
        if (reason != null) {
            return reason;
        }
        if (sourceCheck && (Ipv4Header.source(datagram, datagram.position()) & networkMask) != networkAddress) {
            return DropReason.FOREIGN_SOURCE;
        }
        return null;
    }
}
