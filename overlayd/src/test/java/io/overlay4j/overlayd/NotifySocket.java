package io.overlay4j.overlayd;

import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The receiving end of sd_notify, as systemd holds it: a unix datagram socket bound to a path or an abstract
 * {@code @name}, written for the tests independently of {@link SdNotify} (its own libc binding).
 */
final class NotifySocket implements AutoCloseable {
    private static final int AF_UNIX = 1;
    private static final int SOCK_DGRAM = 2;
    private static final int SOCK_NONBLOCK = 0x800;
    private static final int EAGAIN = 11;

    static {
        Native.register(NotifySocket.class, "c");
    }

    private static native int socket(int domain, int type, int protocol) throws LastErrorException;

    private static native int bind(int fd, byte[] addr, int len) throws LastErrorException;

    private static native long recv(int fd, byte[] buf, long len, int flags) throws LastErrorException;

    private static native int close(int fd) throws LastErrorException;

    private final int fd;
    private final String name;

    private NotifySocket(int fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    /** Binds {@code name}: an absolute path (removed first if it exists) or {@code @abstract}. */
    static NotifySocket bind(String name) throws IOException {
        byte[] path = name.getBytes(StandardCharsets.UTF_8);
        byte[] addr = new byte[110];
        addr[0] = AF_UNIX;
        System.arraycopy(path, 0, addr, 2, path.length);
        boolean abstractName = name.startsWith("@");
        if (abstractName) {
            addr[2] = 0;
        } else {
            Files.deleteIfExists(Path.of(name));
        }
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        try {
            bind(fd, addr, 2 + path.length + (abstractName ? 0 : 1));
        } catch (LastErrorException e) {
            close(fd);
            throw new IOException("bind(" + name + "): errno " + e.getErrorCode(), e);
        }
        return new NotifySocket(fd, name);
    }

    /** The next datagram, or null if none arrives within {@code millis}. */
    String receive(long millis) throws InterruptedException {
        byte[] buf = new byte[4096];
        long deadline = System.nanoTime() + millis * 1_000_000L;
        while (true) {
            try {
                long n = recv(fd, buf, buf.length, 0);
                return new String(buf, 0, (int) n, StandardCharsets.UTF_8);
            } catch (LastErrorException e) {
                if (e.getErrorCode() != EAGAIN) {
                    throw new IllegalStateException("recv: errno " + e.getErrorCode(), e);
                }
            }
            if (System.nanoTime() > deadline) {
                return null;
            }
            Thread.sleep(20);
        }
    }

    @Override
    public void close() throws IOException {
        close(fd);
        if (!name.startsWith("@")) {
            Files.deleteIfExists(Path.of(name));
        }
    }
}
