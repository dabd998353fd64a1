package io.overlay4j.tun.internal;

import com.sun.jna.LastErrorException;
import io.overlay4j.ErrnoException;

/** Turns errno values into {@link ErrnoException}s naming the call. Internal use only. */
public final class Errno {
    private Errno() {
    }

    /** An exception for the calling thread's current errno, e.g. {@code ioctl(TUNSETIFF) failed: EPERM (1)}. */
    public static ErrnoException last(String call) {
        return new ErrnoException(call, LibC.errno());
    }

    /** Converts JNA's {@link LastErrorException} (from code that uses JNA's throwing convention) to ours. */
    public static ErrnoException of(String call, LastErrorException e) {
        ErrnoException x = new ErrnoException(call, e.getErrorCode());
        x.initCause(e);
        return x;
    }

    /** Throws {@link #last(String)} if {@code result} is negative; otherwise returns it. */
    public static int check(int result, String call) throws ErrnoException {
        if (result < 0) {
            throw last(call);
        }
        return result;
    }

    /** Closes {@code fd} if it is non-negative, ignoring errors (for cleanup paths). */
    public static void closeQuietly(int fd) {
        if (fd >= 0) {
            LibC.close(fd);
        }
    }
}
