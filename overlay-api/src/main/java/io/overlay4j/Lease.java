package io.overlay4j;

import static java.util.Objects.requireNonNull;

import java.time.Instant;

/**
 * A subnet held by one node.
 *
 * @param subnet     the subnet, e.g. {@code 100.96.1.0/24}
 * @param attributes what the holder published
 * @param expiration when the lease ends unless renewed; {@code null} for a reservation, which never expires
 */
public record Lease(Ipv4Prefix subnet, LeaseAttributes attributes, Instant expiration) {

    public Lease {
        requireNonNull(subnet, "subnet");
        requireNonNull(attributes, "attributes");
    }

    /** Whether this is a reservation: a lease without expiry that its holder must never delete or convert. */
    public boolean isReservation() {
        return expiration == null;
    }
}
