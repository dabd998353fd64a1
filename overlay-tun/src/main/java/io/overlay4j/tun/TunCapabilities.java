package io.overlay4j.tun;

import io.overlay4j.ErrnoException;
import io.overlay4j.OverlayException;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Probes whether this process can create TUN devices and program the network: {@code /dev/net/tun} exists and opens,
 * and the calling thread holds CAP_NET_ADMIN (in its effective set, read from {@code /proc/thread-self/status}).
 * Modelled on netty's {@code Epoll.unavailabilityCause()}.
 *
 * <p>The probe runs on every call (it is cheap: a stat, an open and a read of {@code /proc/self/status}) so that it
 * reflects capabilities dropped at run time.
 */
public final class TunCapabilities {
    /** The TUN clone device. */
    static final String TUN_PATH = "/dev/net/tun";
    /** CAP_NET_ADMIN's bit number, from {@code <linux/capability.h>}. */
    static final int CAP_NET_ADMIN = 12;

    private TunCapabilities() {
    }

    /**
     * Why TUN devices cannot be used by the calling thread (capabilities are per thread on Linux), or empty if they
     * can. The text says exactly what is missing and how to get it, e.g. {@code "/dev/net/tun does not exist: load the tun module (modprobe tun) ..."}.
     */
    public static Optional<String> unavailabilityCause() {
        if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
            return Optional.of("TUN devices need Linux, this is " + System.getProperty("os.name"));
        }
        if (!Files.exists(Path.of(TUN_PATH))) {
            return Optional.of(TUN_PATH + " does not exist: load the tun module (modprobe tun), or in a container"
                    + " pass the device (--device /dev/net/tun)");
        }
        int fd;
        try {
            fd = LibC.open(TUN_PATH, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            return Optional.of("libc cannot be loaded through JNA: " + e);
        }
        if (fd < 0) {
            int errno = LibC.errno();
            return Optional.of(TUN_PATH + " cannot be opened: " + ErrnoException.errnoName(errno) + " (" + errno
                    + ")" + (errno == ErrnoException.EACCES || errno == ErrnoException.EPERM
                    ? ": run as root or grant access to the device" : ""));
        }
        LibC.close(fd);
        long capEff = effectiveCapabilities();
        if (capEff >= 0 && (capEff & (1L << CAP_NET_ADMIN)) == 0) {
            return Optional.of("the process (this thread) lacks CAP_NET_ADMIN (CapEff " + Long.toHexString(capEff)
                    + " in /proc/thread-self/status): run as root or grant it (setcap cap_net_admin+ep, or --cap-add"
                    + " NET_ADMIN in a container)");
        }
        return Optional.empty();
    }

    /**
     * Throws unless TUN devices can be used.
     *
     * @throws OverlayException of kind {@link OverlayException.Kind#NOT_PERMITTED} with {@link #unavailabilityCause()}
     */
    public static void ensureAvailable() {
        Optional<String> cause = unavailabilityCause();
        if (cause.isPresent()) {
            throw new OverlayException(OverlayException.Kind.NOT_PERMITTED, cause.get());
        }
    }

    /** Whether the calling thread's effective capability set contains CAP_NET_ADMIN (true if it cannot be read). */
    public static boolean hasNetAdmin() {
        long capEff = effectiveCapabilities();
        return capEff < 0 || (capEff & (1L << CAP_NET_ADMIN)) != 0;
    }

    /** The calling thread's {@code CapEff} mask from {@code /proc/thread-self/status}, or -1 if it cannot be read. */
    static long effectiveCapabilities() {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/thread-self/status"));
            for (String line : lines) {
                if (line.startsWith("CapEff:")) {
                    return Long.parseUnsignedLong(line.substring("CapEff:".length()).trim(), 16);
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    /** The exception {@link LinuxTunDevice#open} throws when the kernel refuses with EPERM or EACCES. */
    static OverlayException notPermitted(ErrnoException e) {
        String cause = unavailabilityCause().orElse(
                "the process lacks CAP_NET_ADMIN over the current network namespace (run as root, or grant"
                        + " CAP_NET_ADMIN in the namespace's owning user namespace)");
        return new OverlayException(OverlayException.Kind.NOT_PERMITTED,
                "cannot create a TUN device: " + cause + " [" + e.getMessage() + "]", e);
    }
}
