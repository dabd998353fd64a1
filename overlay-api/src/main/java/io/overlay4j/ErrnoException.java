package io.overlay4j;

import java.io.IOException;

/**
 * A kernel call failed: carries the system call (or netlink request) and the errno it returned, e.g.
 * {@code ioctl(TUNSETIFF) failed: EPERM (1)}.
 */
public class ErrnoException extends IOException {
    private static final long serialVersionUID = 1L;

    /** errno values callers commonly branch on (from {@code <asm-generic/errno-base.h>}). */
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int ESRCH = 3;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int EACCES = 13;
    public static final int EBUSY = 16;
    public static final int EEXIST = 17;
    public static final int ENODEV = 19;
    public static final int EINVAL = 22;
    public static final int ENETDOWN = 100;
    public static final int ENETUNREACH = 101;
    public static final int EADDRNOTAVAIL = 99;
    public static final int EOPNOTSUPP = 95;

    private final String call;
    private final int errno;

    /**
     * @param call  the system call or request, e.g. {@code "ioctl(TUNSETIFF)"} or {@code "RTM_NEWROUTE 100.96.0.0/16"}
     * @param errno the positive errno value
     */
    public ErrnoException(String call, int errno) {
        super(call + " failed: " + errnoName(errno) + " (" + errno + ")");
        this.call = call;
        this.errno = errno;
    }

    /** The system call or request that failed. */
    public String call() {
        return call;
    }

    /** The positive errno value. */
    public int errno() {
        return errno;
    }

    /** The symbolic name of an errno value, e.g. {@code "EPERM"}, or {@code "errno N"} when unknown. */
    public static String errnoName(int errno) {
        switch (errno) {
            case 1: return "EPERM";
            case 2: return "ENOENT";
            case 3: return "ESRCH";
            case 4: return "EINTR";
            case 5: return "EIO";
            case 6: return "ENXIO";
            case 9: return "EBADF";
            case 11: return "EAGAIN";
            case 12: return "ENOMEM";
            case 13: return "EACCES";
            case 16: return "EBUSY";
            case 17: return "EEXIST";
            case 19: return "ENODEV";
            case 22: return "EINVAL";
            case 24: return "EMFILE";
            case 28: return "ENOSPC";
            case 34: return "ERANGE";
            case 90: return "EMSGSIZE";
            case 92: return "ENOPROTOOPT";
            case 93: return "EPROTONOSUPPORT";
            case 95: return "EOPNOTSUPP";
            case 97: return "EAFNOSUPPORT";
            case 98: return "EADDRINUSE";
            case 99: return "EADDRNOTAVAIL";
            case 100: return "ENETDOWN";
            case 101: return "ENETUNREACH";
            case 105: return "ENOBUFS";
            case 111: return "ECONNREFUSED";
            case 113: return "EHOSTUNREACH";
            default: return "errno " + errno;
        }
    }
}
