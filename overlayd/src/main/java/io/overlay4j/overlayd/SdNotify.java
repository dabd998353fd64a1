package io.overlay4j.overlayd;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * systemd's readiness protocol ({@code sd_notify(3)}): one datagram such as {@code READY=1} to the unix socket named by
 * {@code $NOTIFY_SOCKET} (a path, or an abstract name written with a leading {@code @}). JDK 17 has no unix datagram
 * channel, so the socket is made through libc with JNA. Without {@code $NOTIFY_SOCKET} nothing is sent.
 */
final class SdNotify {
    private final String socket;

    /** The notifier for {@code $NOTIFY_SOCKET} as given (null or empty: none). */
    SdNotify(String notifySocket) {
        this.socket = notifySocket == null || notifySocket.isEmpty() ? null : notifySocket;
    }

    /** Whether there is a socket to notify. */
    boolean enabled() {
        return socket != null;
    }

    /**
     * Sends {@code state} (e.g. {@code READY=1}).
     *
     * @return false if there is no {@code $NOTIFY_SOCKET}
     * @throws IOException if the datagram cannot be sent, with the errno
     */
    boolean notify(String state) throws IOException {
        if (socket == null) {
            return false;
        }
        byte[] path = socket.getBytes(StandardCharsets.UTF_8);
        boolean abstractName = path[0] == '@';
        if (!(abstractName || path[0] == '/') || path.length > Sys.SUN_PATH_MAX - (abstractName ? 0 : 1)) {
            throw new IOException("NOTIFY_SOCKET is neither an absolute path nor an abstract @name: " + socket);
        }
        byte[] addr = new byte[2 + Sys.SUN_PATH_MAX];
        addr[0] = (byte) Sys.AF_UNIX; // sa_family_t, little-endian on the platforms JNA runs overlayd on
        addr[1] = 0;
        System.arraycopy(path, 0, addr, 2, path.length);
        if (abstractName) {
            addr[2] = 0;
        }
        int addrLen = 2 + path.length + (abstractName ? 0 : 1);
        byte[] message = state.getBytes(StandardCharsets.UTF_8);
        int fd;
        try {
            fd = Sys.socket(Sys.AF_UNIX, Sys.SOCK_DGRAM | Sys.SOCK_CLOEXEC, 0);
        } catch (LastErrorException e) {
            throw new IOException("socket(AF_UNIX, SOCK_DGRAM) failed: errno " + e.getErrorCode(), e);
        }
        try {
            Sys.sendto(fd, message, message.length, Sys.MSG_NOSIGNAL, addr, addrLen);
        } catch (LastErrorException e) {
            throw new IOException("sendto(" + socket + ") failed: errno " + e.getErrorCode(), e);
        } finally {
            try {
                Sys.close(fd);
            } catch (LastErrorException ignored) {
                // nothing to do
            }
        }
        return true;
    }

    /** libc, direct-mapped. Constants from {@code <sys/socket.h>} and {@code <sys/un.h>} (Linux). */
    static final class Sys {
        static final int AF_UNIX = 1;
        static final int SOCK_DGRAM = 2;
        static final int SOCK_CLOEXEC = 0x80000;
        static final int MSG_NOSIGNAL = 0x4000;
        /** {@code sizeof(sun_path)}. */
        static final int SUN_PATH_MAX = 108;

        static {
            Native.register("c");
        }

        private Sys() {
        }

        static native int socket(int domain, int type, int protocol) throws LastErrorException;

        static native long sendto(int fd, byte[] buf, long len, int flags, byte[] addr, int addrLen)
                throws LastErrorException;

        static native int close(int fd) throws LastErrorException;
    }
}
