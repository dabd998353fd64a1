package io.overlay4j.overlayd;

/** A bad command line or {@code FLANNELD_*} value: one line for the user, exit status 2. */
final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
        super(message);
    }
}
