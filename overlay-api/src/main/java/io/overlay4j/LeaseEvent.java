package io.overlay4j;

import static java.util.Objects.requireNonNull;

/**
 * A change to the set of leases, as seen by a {@link SubnetAllocator.Watch}.
 *
 * @param type  whether the lease appeared (or changed) or went away
 * @param lease the lease; for {@link Type#REMOVED} the last known attributes
 */
public record LeaseEvent(Type type, Lease lease) {

    /** The kind of change. */
    public enum Type {
        /** A lease was created, renewed or changed: treat as create-or-replace. */
        ADDED,
        /** A lease was deleted or expired. */
        REMOVED
    }

    public LeaseEvent {
        requireNonNull(type, "type");
        requireNonNull(lease, "lease");
    }

    /** An {@link Type#ADDED} event. */
    public static LeaseEvent added(Lease lease) {
        return new LeaseEvent(Type.ADDED, lease);
    }

    /** A {@link Type#REMOVED} event. */
    public static LeaseEvent removed(Lease lease) {
        return new LeaseEvent(Type.REMOVED, lease);
    }
}
