package io.overlay4j;

import static java.util.Objects.requireNonNull;

/**
 * The root of overlay4j's unchecked exceptions. Callers branch on {@link #kind()} rather than on subclasses.
 */
public class OverlayException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** What went wrong, coarsely enough to act on. */
    public enum Kind {
        /** The network configuration is malformed or violates flannel's rules; the message says which. */
        CONFIG_INVALID,
        /** No network configuration exists in the store. */
        CONFIG_NOT_FOUND,
        /** Every subnet of the network is taken. */
        SUBNETS_EXHAUSTED,
        /** Our lease disappeared (expired or deleted by someone else). */
        LEASE_LOST,
        /** Another node holds the subnet we asked for. */
        LEASE_CONFLICT,
        /** The lease store cannot be reached or failed; the operation may be retried. */
        STORE_UNAVAILABLE,
        /** A value in the lease store cannot be parsed. */
        STORE_CORRUPT,
        /** The host lacks a capability (root, CAP_NET_ADMIN, {@code /dev/net/tun}, a kernel feature). */
        NOT_PERMITTED,
        /** A kernel device, address or route could not be set up. */
        DEVICE,
        /** An argument or state the caller controls is invalid. */
        ILLEGAL_ARGUMENT
    }

    private final Kind kind;

    /** An exception of {@code kind} with a message that says what happened and, where it helps, what to do. */
    public OverlayException(Kind kind, String message) {
        super(message);
        this.kind = requireNonNull(kind, "kind");
    }

    /** As {@link #OverlayException(Kind, String)}, with the underlying cause. */
    public OverlayException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = requireNonNull(kind, "kind");
    }

    /** The kind of failure. */
    public Kind kind() {
        return kind;
    }
}
