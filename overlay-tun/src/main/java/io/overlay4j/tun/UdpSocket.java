package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import io.overlay4j.ErrnoException;
import io.overlay4j.tun.internal.DirectBuffers;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.FdLifecycle;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A UDP/IPv4 socket for the data plane with the kernel's UDP offloads: GSO send ({@code UDP_SEGMENT}: one
 * {@code sendmsg} carries up to {@value #MAX_SEGMENTS} equal-size datagrams), GRO receive ({@code UDP_GRO}: one
 * receive returns several datagrams of one sender plus their segment size), {@code sendmmsg} batches and socket
 * buffers forced above {@code wmem_max}/{@code rmem_max} where the process has CAP_NET_ADMIN. The JDK's
 * {@code DatagramChannel} can do none of this.
 *
 * <p>Open one with {@link #open(InetSocketAddress, Options)}; the socket lives in the network namespace of the thread
 * that opens it (run {@code open} inside {@link NetworkNamespace#call} to create it elsewhere); I/O works from any
 * thread.
 *
 * <p>Addresses are IPv4 addresses as an {@code int} in network order (first octet in the most significant byte, as
 * {@link io.overlay4j.Ipv4Prefix#toInt} returns and {@link ByteBuffer#getInt} reads from an IP header); ports are
 * 1..65535.
 *
 * <p>Fallbacks: {@link #sendSegmented} falls back to one {@code sendto} per segment for the rest of the socket's life
 * when the kernel refuses GSO (a kernel older than 4.18: ENOPROTOOPT at open; EIO: an IPsec route, or before Linux 6.11
 * an egress device without TX checksum offload; EINVAL, e.g. {@code SO_NO_CHECK}; EOPNOTSUPP), logging once. A
 * segment larger than the route's MTU (EMSGSIZE) makes only that call fall back (the kernel fragments the datagrams).
 * GRO that the kernel does not accept leaves {@link #groEnabled()} false and every receive returns one datagram.
 * Buffer sizes the kernel does not let us force are set with the plain options and capped at
 * {@code wmem_max}/{@code rmem_max}; {@link #sendBufferSize()} and {@link #receiveBufferSize()} say what the kernel
 * granted.
 *
 * <p>I/O: a waiting {@link #receive} is one blocking {@code recvmsg} (one system call per datagram, also when the
 * queue is empty); {@link #close()} wakes it with {@code shutdown(2)}, and it fails with
 * {@link AsynchronousCloseException}. Every other call passes {@code MSG_DONTWAIT}, tries the system call first and
 * only on EAGAIN {@code poll(2)}s on the socket and an eventfd that {@link #close()} signals. The descriptor is closed
 * only after the last in-flight call has left the kernel.
 * The data path needs direct buffers, allocates nothing per call and reuses per-direction native structures: senders
 * take turns on one lock and receivers on another (uncontended in the usual one-thread-per-direction use), so any
 * number of threads may use the socket.
 */
public final class UdpSocket implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(UdpSocket.class);

    /** The most segments one {@link #sendSegmented} call may carry (the kernel's {@code UDP_MAX_SEGMENTS}). */
    public static final int MAX_SEGMENTS = 64;
    /** The largest UDP/IPv4 payload: 65535 - 20 (IP header) - 8 (UDP header). */
    public static final int MAX_PAYLOAD = 65507;
    /** {@link #awaitReadable(LinuxTunDevice)}: the socket may have a datagram queued. */
    public static final int SOCKET_READABLE = 1;
    /** {@link #awaitReadable(LinuxTunDevice)}: the TUN device may have a packet queued. */
    public static final int TUN_READABLE = 2;
    /** {@link #awaitReadable(LinuxTunDevice, long)}: the timeout passed with nothing to read and no wakeup. */
    public static final int TIMED_OUT = 4;

    /** The room a receive buffer needs when GRO is on: a coalesced run is at most this long. */
    public static final int MAX_GRO_BYTES = 65535;
    /** The most datagrams one {@code sendmmsg} call carries; {@link #sendBatch} splits longer batches. */
    public static final int MAX_BATCH = 64;
    /**
     * A system property for tests of the fallback: when {@code true}, sockets opened afterwards behave as on a kernel
     * that refuses UDP GSO sends (EIO) and fall back to one datagram per segment.
     */
    public static final String REFUSE_GSO_PROPERTY = "overlay4j.udp.refuseGso";

    private static final boolean BIG_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN;
    private static final int INT_SIZE = 4;
    private static final int U16_SIZE = 2;
    /** {@code CMSG_LEN(sizeof(u16))}. */
    private static final int SEGMENT_CMSG_LEN = LibC.CMSGHDR_SIZE + U16_SIZE;
    /** {@code CMSG_SPACE(sizeof(u16))}: the length is rounded up to 8 bytes. */
    private static final int SEGMENT_CMSG_SPACE = LibC.CMSGHDR_SIZE + 8;
    /** Room for the UDP_GRO control message with plenty to spare (CMSG_SPACE(sizeof(int)) is 24). */
    private static final int RECEIVE_CONTROL_SIZE = 64;

    // Layout of the per-direction native structures (offsets 8-aligned).
    private static final int MSG = 0;
    private static final int IOV = 64;
    private static final int ADDR = IOV + LibC.IOVEC_SIZE;
    private static final int POLLFDS = ADDR + LibC.SOCKADDR_IN_SIZE;
    private static final int CONTROL = POLLFDS + 2 * LibC.POLLFD_SIZE;
    private static final int SEND_SIZE = CONTROL + SEGMENT_CMSG_SPACE;
    private static final int RECEIVE_SIZE = CONTROL + RECEIVE_CONTROL_SIZE;

    private final int fd;
    private final InetSocketAddress localAddress;
    private final int sendBufferSize;
    private final int receiveBufferSize;
    private final boolean groEnabled;
    /** Calls in flight and the close protocol. */
    private final FdLifecycle life;
    /** msghdr, iovec, sockaddr_in, pollfd[2] {socket POLLOUT, eventfd}, UDP_SEGMENT cmsg; guarded by itself. */
    private final ByteBuffer send;
    private final long sendBase;
    /** msghdr, iovec, sockaddr_in, pollfd[2] {socket POLLIN, eventfd}, control buffer; guarded by itself. */
    private final ByteBuffer receive;
    private final long receiveBase;
    /**
     * pollfd[5] {socket POLLIN, close eventfd, wakeup eventfd, TUN POLLIN, TUN close eventfd} for
     * {@link #awaitReadable()} (the first three) and {@link #awaitReadable(LinuxTunDevice)} (all five), then 8 bytes to
     * read the wakeup eventfd into; one waiter at a time.
     */
    private final ByteBuffer ready;
    private final long readyBase;
    /** mmsghdr[MAX_BATCH], iovec[MAX_BATCH], sockaddr_in[MAX_BATCH]; allocated by the first sendBatch. */
    private ByteBuffer batch;
    private volatile boolean gsoSupported;
    /** Test hook: treat the next GSO sends as refused by the kernel with EIO, without calling it. */
    private volatile boolean pretendGsoRefused;
    /** Whether {@link #close()} has shut the socket down. */
    private final java.util.concurrent.atomic.AtomicBoolean shutDown = new java.util.concurrent.atomic.AtomicBoolean();
    /** Whether an EMSGSIZE fallback was logged; guarded by {@link #send}. */
    private boolean loggedMsgSize;

    /** The eventfd {@link #wakeup()} signals and {@link #awaitReadable()} resets. */
    private final int wakeupFd;
    /** The 8-byte increment {@link #wakeup()} writes (1, native order); never changed after construction. */
    private final ByteBuffer wakeupValue;

    private UdpSocket(int fd, int wakeFd, int wakeupFd, InetSocketAddress localAddress, int sendBufferSize,
                      int receiveBufferSize, boolean groEnabled, boolean gsoSupported) {
        this.fd = fd;
        this.wakeupFd = wakeupFd;
        this.localAddress = localAddress;
        this.sendBufferSize = sendBufferSize;
        this.receiveBufferSize = receiveBufferSize;
        this.groEnabled = groEnabled;
        this.gsoSupported = gsoSupported;
        this.pretendGsoRefused = gsoSupported && Boolean.getBoolean(REFUSE_GSO_PROPERTY);
        send = nativeBuffer(SEND_SIZE);
        sendBase = DirectBuffers.address(send);
        receive = nativeBuffer(RECEIVE_SIZE);
        receiveBase = DirectBuffers.address(receive);
        ready = nativeBuffer(5 * LibC.POLLFD_SIZE + 8);
        readyBase = DirectBuffers.address(ready);
        ready.putInt(0, fd);
        ready.putShort(4, LibC.POLLIN);
        ready.putInt(LibC.POLLFD_SIZE, wakeFd);
        ready.putShort(LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        ready.putInt(2 * LibC.POLLFD_SIZE, wakeupFd);
        ready.putShort(2 * LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        ready.putShort(3 * LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        ready.putShort(4 * LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        wakeupValue = nativeBuffer(8);
        wakeupValue.putLong(0, 1);
        life = new FdLifecycle(fd, wakeFd, () -> {
            LibC.close(wakeupFd);
            LOG.debug("closed UDP socket {} (fd {})", localAddress, fd);
        });
        for (ByteBuffer b : new ByteBuffer[] {send, receive}) {
            long base = DirectBuffers.address(b);
            b.putLong(MSG + LibC.MSGHDR_NAME, base + ADDR);
            b.putInt(MSG + LibC.MSGHDR_NAMELEN, LibC.SOCKADDR_IN_SIZE);
            b.putLong(MSG + LibC.MSGHDR_IOV, base + IOV);
            b.putLong(MSG + LibC.MSGHDR_IOVLEN, 1);
            b.putLong(MSG + LibC.MSGHDR_CONTROL, base + CONTROL);
            b.putInt(POLLFDS, fd);
            b.putShort(POLLFDS + 4, b == send ? LibC.POLLOUT : LibC.POLLIN);
            b.putInt(POLLFDS + LibC.POLLFD_SIZE, wakeFd);
            b.putShort(POLLFDS + LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        }
        send.putLong(CONTROL, SEGMENT_CMSG_LEN);
        send.putInt(CONTROL + LibC.CMSGHDR_LEVEL, LibC.SOL_UDP);
        send.putInt(CONTROL + LibC.CMSGHDR_TYPE, LibC.UDP_SEGMENT);
    }

    /**
     * Opens a UDP/IPv4 socket in the calling thread's network namespace and binds it.
     *
     * @param bind    the local address and port; the wildcard address (IPv4 or IPv6 {@code ::}) binds 0.0.0.0, port 0
     *                lets the kernel pick one (see {@link #localAddress()})
     * @param options buffer sizes and GRO
     * @return the open socket
     * @throws ErrnoException           naming the failed call, e.g. {@code bind(0.0.0.0:8285) failed: EADDRINUSE (98)}
     * @throws IllegalArgumentException if {@code bind} is unresolved or an IPv6 address other than the wildcard
     */
    public static UdpSocket open(InetSocketAddress bind, Options options) throws IOException {
        requireNonNull(bind, "bind");
        requireNonNull(options, "options");
        int bindAddress = ipv4(bind);
        int fd = -1;
        int wakeFd = -1;
        int wakeupFd = -1;
        boolean ok = false;
        ByteBuffer scratch = nativeBuffer(LibC.SOCKADDR_IN_SIZE + 8);
        long base = DirectBuffers.address(scratch);
        try {
            // Blocking, for one-syscall receives; sends and tryReceive pass MSG_DONTWAIT per call.
            fd = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
            Errno.check(fd, "socket(AF_INET, SOCK_DGRAM)");
            if (options.sendBufferSize() > 0) {
                setBufferSize(fd, LibC.SO_SNDBUFFORCE, LibC.SO_SNDBUF, "SO_SNDBUF", options.sendBufferSize(), scratch);
            }
            if (options.receiveBufferSize() > 0) {
                setBufferSize(fd, LibC.SO_RCVBUFFORCE, LibC.SO_RCVBUF, "SO_RCVBUF", options.receiveBufferSize(),
                        scratch);
            }
            boolean gro = false;
            if (options.gro()) {
                scratch.putInt(0, 1);
                gro = LibC.setsockopt(fd, LibC.SOL_UDP, LibC.UDP_GRO, base, INT_SIZE) == 0;
                if (!gro) {
                    LOG.warn("the kernel refuses UDP_GRO ({}): every receive returns one datagram",
                            Errno.last("setsockopt(UDP_GRO)").getMessage());
                }
            }
            // UDP_SEGMENT as a socket option exists exactly where the cmsg does (Linux 4.18+). Whether a route allows
            // GSO is only known per send: sendSegmented falls back when the kernel refuses.
            boolean gso = getIntOption(fd, LibC.SOL_UDP, LibC.UDP_SEGMENT, scratch) >= 0;
            if (!gso) {
                LOG.info("no UDP GSO in this kernel ({}): segmented sends go out one datagram at a time",
                        Errno.last("getsockopt(UDP_SEGMENT)").getMessage());
            }

            writeSockaddr(scratch, 0, bindAddress, bind.getPort());
            if (LibC.bind(fd, base, LibC.SOCKADDR_IN_SIZE) < 0) {
                throw Errno.last("bind(" + dottedQuad(bindAddress) + ":" + bind.getPort() + ")");
            }
            scratch.putInt(LibC.SOCKADDR_IN_SIZE, LibC.SOCKADDR_IN_SIZE);
            Errno.check(LibC.getsockname(fd, base, base + LibC.SOCKADDR_IN_SIZE), "getsockname");
            InetSocketAddress local = new InetSocketAddress(inet4(be32(scratch.getInt(4))),
                    be16(scratch.getShort(2)) & 0xffff);
            int sndbuf = Errno.check(getIntOption(fd, LibC.SOL_SOCKET, LibC.SO_SNDBUF, scratch),
                    "getsockopt(SO_SNDBUF)");
            int rcvbuf = Errno.check(getIntOption(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUF, scratch),
                    "getsockopt(SO_RCVBUF)");

            wakeFd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
            Errno.check(wakeFd, "eventfd");
            wakeupFd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
            Errno.check(wakeupFd, "eventfd");
            UdpSocket socket = new UdpSocket(fd, wakeFd, wakeupFd, local, sndbuf, rcvbuf, gro, gso);
            ok = true;
            LOG.debug("opened {}", socket);
            return socket;
        } finally {
            if (!ok) {
                Errno.closeQuietly(wakeupFd);
                Errno.closeQuietly(wakeFd);
                Errno.closeQuietly(fd);
            }
        }
    }

    /** Tries {@code force} (CAP_NET_ADMIN: no cap), falls back to {@code plain} (capped at the sysctl maximum). */
    private static void setBufferSize(int fd, int force, int plain, String name, int size, ByteBuffer scratch)
            throws ErrnoException {
        long value = DirectBuffers.address(scratch);
        scratch.putInt(0, size);
        if (LibC.setsockopt(fd, LibC.SOL_SOCKET, force, value, INT_SIZE) == 0) {
            return;
        }
        int errno = LibC.errno();
        LOG.debug("cannot force {} to {} bytes ({}); the plain option caps it at the sysctl maximum", name, size,
                ErrnoException.errnoName(errno));
        scratch.putInt(0, size);
        Errno.check(LibC.setsockopt(fd, LibC.SOL_SOCKET, plain, value, INT_SIZE),
                "setsockopt(" + name + " " + size + ")");
    }

    /** getsockopt of an int option into scratch[0..4) (length at [8..12)); returns the value, or -1 with errno. */
    private static int getIntOption(int fd, int level, int name, ByteBuffer scratch) {
        long base = DirectBuffers.address(scratch);
        scratch.putInt(0, 0);
        scratch.putInt(8, INT_SIZE);
        if (LibC.getsockopt(fd, level, name, base, base + 8) < 0) {
            return -1;
        }
        return scratch.getInt(0);
    }

    private static int ipv4(InetSocketAddress address) {
        if (address.isUnresolved()) {
            throw new IllegalArgumentException("unresolved address: " + address);
        }
        InetAddress a = address.getAddress();
        if (a.isAnyLocalAddress()) {
            return 0;
        }
        if (!(a instanceof Inet4Address)) {
            throw new IllegalArgumentException("not an IPv4 address: " + address);
        }
        byte[] b = a.getAddress();
        return (b[0] & 0xff) << 24 | (b[1] & 0xff) << 16 | (b[2] & 0xff) << 8 | (b[3] & 0xff);
    }

    private static Inet4Address inet4(int address) {
        byte[] b = {(byte) (address >>> 24), (byte) (address >>> 16), (byte) (address >>> 8), (byte) address};
        try {
            return (Inet4Address) InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw new AssertionError(e); // four bytes are always an address
        }
    }

    /** Dotted quad, for messages. */
    private static String dottedQuad(int address) {
        return (address >>> 24) + "." + (address >>> 16 & 0xff) + "." + (address >>> 8 & 0xff) + "."
                + (address & 0xff);
    }

    private static ByteBuffer nativeBuffer(int size) {
        return ByteBuffer.allocateDirect(size).order(ByteOrder.nativeOrder());
    }

    /** A 16-bit value between host order and network order, for a native-order buffer. */
    private static short be16(int value) {
        return BIG_ENDIAN ? (short) value : Short.reverseBytes((short) value);
    }

    private static int be32(int value) {
        return BIG_ENDIAN ? value : Integer.reverseBytes(value);
    }

    private static void writeSockaddr(ByteBuffer b, int offset, int address, int port) {
        b.putShort(offset, (short) LibC.AF_INET);
        b.putShort(offset + 2, be16(port));
        b.putInt(offset + 4, be32(address));
        b.putLong(offset + 8, 0L);
    }

    /** The bound address and port (the port the kernel picked if the socket was bound to port 0). */
    public InetSocketAddress localAddress() {
        return localAddress;
    }

    /** The send buffer size the kernel granted, as {@code getsockopt(SO_SNDBUF)} reports it (twice the request). */
    public int sendBufferSize() {
        return sendBufferSize;
    }

    /** The receive buffer size the kernel granted, as {@code getsockopt(SO_RCVBUF)} reports it (twice the request). */
    public int receiveBufferSize() {
        return receiveBufferSize;
    }

    /** Whether {@link Options#gro()} was asked for and the kernel accepted {@code UDP_GRO}. */
    public boolean groEnabled() {
        return groEnabled;
    }

    /**
     * Whether {@link #sendSegmented} still uses GSO: true from open if the kernel knows {@code UDP_SEGMENT}, false for
     * good once a GSO send was refused.
     */
    public boolean gsoSupported() {
        return gsoSupported;
    }

    /** Test hook: from now on GSO sends behave as if the kernel refused them with EIO. */
    void pretendGsoRefused() {
        pretendGsoRefused = true;
    }

    /** Test hook: the descriptor, for socket options the API does not offer. */
    int fd() {
        return fd;
    }

    /**
     * Sends one datagram ({@code sendto}) of {@code payload}'s remaining bytes, waiting while the send buffer is full.
     * The position advances to the limit. The caller keeps ownership of {@code payload}.
     *
     * @param payload a direct buffer with 0..{@value #MAX_PAYLOAD} bytes remaining
     * @param address the destination IPv4 address in network order
     * @param port    the destination port
     * @return the number of bytes sent
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ClosedChannelException     if the socket is closed
     * @throws ErrnoException             naming the call for kernel errors (e.g. ENETUNREACH)
     */
    public int send(ByteBuffer payload, int address, int port) throws IOException {
        int pos = payload.position();
        int length = payload.limit() - pos;
        checkPayload(payload, length);
        checkPort(port);
        acquire();
        try {
            synchronized (send) {
                writeSockaddr(send, ADDR, address, port);
                sendTo(DirectBuffers.address(payload) + pos, length, address, port);
            }
            payload.position(pos + length);
            return length;
        } finally {
            release();
        }
    }

    /**
     * Sends {@code payload}'s remaining bytes as back-to-back datagrams of {@code segmentSize} bytes (the last may be
     * shorter) with one {@code sendmsg} carrying a {@code UDP_SEGMENT} control message: the receiver sees ordinary
     * datagrams. If the kernel refuses GSO (EIO: an IPsec route, or before Linux 6.11 an egress device without TX
     * checksum offload; EINVAL; ENOPROTOOPT; EOPNOTSUPP) this call and all later ones send the segments as separate
     * datagrams, 64 per {@code sendmmsg}, and {@link #gsoSupported()} turns false (logged once). If a segment does not
     * fit the route's MTU (EMSGSIZE) only this call sends them that way (the kernel fragments them). The position advances to the limit. The caller
     * keeps ownership of {@code payload}.
     *
     * @param payload     a direct buffer with 1..{@value #MAX_PAYLOAD} bytes remaining, at most {@value #MAX_SEGMENTS}
     *                    segments
     * @param segmentSize the size of each datagram but the last, 1..{@value #MAX_PAYLOAD}
     * @param address     the destination IPv4 address in network order
     * @param port        the destination port
     * @return the number of bytes sent (all of them)
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ClosedChannelException     if the socket is closed
     * @throws ErrnoException             naming the call for other kernel errors; segments before the failing one
     *                                    may have been sent by the fallback
     * @throws IllegalArgumentException   for an empty payload, a bad segment size or more than 64 segments
     */
    public int sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) throws IOException {
        int pos = payload.position();
        int length = payload.limit() - pos;
        checkPayload(payload, length);
        checkPort(port);
        if (length == 0 || segmentSize <= 0 || segmentSize > MAX_PAYLOAD
                || (length + segmentSize - 1) / segmentSize > MAX_SEGMENTS) {
            throw new IllegalArgumentException("cannot send " + length + " bytes as segments of " + segmentSize
                    + " bytes (at most " + MAX_SEGMENTS + " segments, at least 1 byte)");
        }
        acquire();
        try {
            synchronized (send) {
                writeSockaddr(send, ADDR, address, port);
                long data = DirectBuffers.address(payload) + pos;
                if (length <= segmentSize) {
                    sendTo(data, length, address, port); // one datagram: GSO would not segment anyway
                } else if (!gsoSupported || !sendGso(data, length, segmentSize, address, port)) {
                    sendSegmentsBatched(data, length, segmentSize, address, port);
                }
            }
            payload.position(pos + length);
            return length;
        } finally {
            release();
        }
    }

    /** One GSO sendmsg; false if the kernel refuses it (GSO now off unless EMSGSIZE). Holds the send lock. */
    private boolean sendGso(long data, int length, int segmentSize, int address, int port) throws IOException {
        send.putLong(IOV, data);
        send.putLong(IOV + 8, length);
        send.putLong(MSG + LibC.MSGHDR_CONTROLLEN, SEGMENT_CMSG_SPACE);
        send.putShort(CONTROL + LibC.CMSGHDR_SIZE, (short) segmentSize);
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            long n;
            int errno;
            if (pretendGsoRefused) {
                n = -1;
                errno = ErrnoException.EIO;
            } else {
                n = LibC.sendmsg(fd, sendBase + MSG, LibC.MSG_DONTWAIT);
                errno = n < 0 ? LibC.errno() : 0;
            }
            if (n >= 0) {
                return true;
            }
            if (errno == ErrnoException.EAGAIN) {
                await(sendBase + POLLFDS, send, "poll(POLLOUT)");
            } else if (errno == ErrnoException.EIO || errno == ErrnoException.EINVAL
                    || errno == LibC.ENOPROTOOPT || errno == ErrnoException.EOPNOTSUPP) {
                gsoSupported = false;
                LOG.warn("the kernel refuses UDP GSO to {}:{} ({}); sending one datagram per segment from now on"
                        + " (EIO: an IPsec route, or a kernel before 6.11 and no TX checksum offload)",
                        dottedQuad(address), port, ErrnoException.errnoName(errno));
                return false;
            } else if (errno == LibC.EMSGSIZE) {
                // A segment exceeds this route's MTU: a property of the destination, not of GSO.
                if (!loggedMsgSize) {
                    loggedMsgSize = true;
                    LOG.warn("UDP GSO segments of {} bytes do not fit the MTU towards {}:{} (EMSGSIZE); sending them "
                            + "one by one, the kernel fragments them (logged once)", segmentSize, dottedQuad(address),
                            port);
                }
                return false;
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("sendmsg(UDP_SEGMENT " + segmentSize + ", " + length + " bytes to "
                        + dottedQuad(address) + ":" + port + ")", errno);
            }
        }
    }

    /** sendto the address in {@code send}; holds the send lock. */
    private void sendTo(long data, int length, int address, int port) throws IOException {
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            long n = LibC.sendto(fd, data, length, LibC.MSG_DONTWAIT, sendBase + ADDR, LibC.SOCKADDR_IN_SIZE);
            if (n >= 0) {
                return;
            }
            int errno = LibC.errno();
            if (errno == ErrnoException.EAGAIN) {
                await(sendBase + POLLFDS, send, "poll(POLLOUT)");
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("sendto(" + dottedQuad(address) + ":" + port + ", " + length + " bytes)",
                        errno);
            }
        }
    }

    /**
     * Sends {@code count} datagrams, {@code payloads[offset + i]} to {@code addresses[offset + i]}:{@code
     * ports[offset + i]}, with as few {@code sendmmsg} calls as possible ({@value #MAX_BATCH} datagrams each). Each
     * sent buffer's position advances to its limit. The caller keeps ownership of the buffers and arrays; nothing is
     * allocated per call (the first call allocates the native batch structures once).
     *
     * @return {@code count}: every datagram was sent
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ClosedChannelException     if the socket is closed
     * @throws ErrnoException             naming the call for kernel errors; the datagrams before the failing one were
     *                                    sent (their positions are at their limits)
     * @throws IllegalArgumentException   if a buffer is not direct or too long, a port is out of range, or the range
     *                                    exceeds an array
     */
    public int sendBatch(ByteBuffer[] payloads, int[] addresses, int[] ports, int offset, int count)
            throws IOException {
        if (offset < 0 || count < 0 || offset + count > payloads.length || offset + count > addresses.length
                || offset + count > ports.length) {
            throw new IllegalArgumentException("range " + offset + "+" + count + " exceeds the arrays");
        }
        for (int i = offset; i < offset + count; i++) {
            checkPayload(payloads[i], payloads[i].remaining());
            checkPort(ports[i]);
        }
        acquire();
        try {
            synchronized (send) {
                ByteBuffer b = batchBuffer();
                long base = DirectBuffers.address(b);
                int iovs = MAX_BATCH * LibC.MMSGHDR_SIZE;
                int addrs = iovs + MAX_BATCH * LibC.IOVEC_SIZE;
                int done = 0;
                while (done < count) {
                    int n = Math.min(MAX_BATCH, count - done);
                    for (int i = 0; i < n; i++) {
                        ByteBuffer p = payloads[offset + done + i];
                        int m = i * LibC.MMSGHDR_SIZE;
                        int iov = iovs + i * LibC.IOVEC_SIZE;
                        int addr = addrs + i * LibC.SOCKADDR_IN_SIZE;
                        writeSockaddr(b, addr, addresses[offset + done + i], ports[offset + done + i]);
                        b.putLong(iov, DirectBuffers.address(p) + p.position());
                        b.putLong(iov + 8, p.remaining());
                        b.putLong(m + LibC.MSGHDR_NAME, base + addr);
                        b.putLong(m + LibC.MSGHDR_NAMELEN, LibC.SOCKADDR_IN_SIZE); // clears the padding too
                        b.putLong(m + LibC.MSGHDR_IOV, base + iov);
                        b.putLong(m + LibC.MSGHDR_IOVLEN, 1);
                        b.putLong(m + LibC.MSGHDR_CONTROL, 0);
                        b.putLong(m + LibC.MSGHDR_CONTROLLEN, 0);
                        b.putLong(m + LibC.MSGHDR_FLAGS, 0); // msg_flags and the padding after it
                    }
                    int sent = sendMmsg(base, n);
                    for (int i = 0; i < sent; i++) {
                        ByteBuffer p = payloads[offset + done + i];
                        p.position(p.limit());
                    }
                    done += sent;
                }
            }
            return count;
        } finally {
            release();
        }
    }

    /**
     * The fallback when GSO is refused: the segments as separate datagrams, {@value #MAX_BATCH} per
     * {@code sendmmsg}. Holds the send lock.
     */
    private void sendSegmentsBatched(long data, int length, int segmentSize, int address, int port)
            throws IOException {
        ByteBuffer b = batchBuffer();
        long base = DirectBuffers.address(b);
        int iovs = MAX_BATCH * LibC.MMSGHDR_SIZE;
        int addr = iovs + MAX_BATCH * LibC.IOVEC_SIZE;
        writeSockaddr(b, addr, address, port);
        int count = (length + segmentSize - 1) / segmentSize;
        int done = 0;
        while (done < count) {
            int n = Math.min(MAX_BATCH, count - done);
            for (int i = 0; i < n; i++) {
                int off = (done + i) * segmentSize;
                int m = i * LibC.MMSGHDR_SIZE;
                int iov = iovs + i * LibC.IOVEC_SIZE;
                b.putLong(iov, data + off);
                b.putLong(iov + 8, Math.min(segmentSize, length - off));
                b.putLong(m + LibC.MSGHDR_NAME, base + addr);
                b.putLong(m + LibC.MSGHDR_NAMELEN, LibC.SOCKADDR_IN_SIZE);
                b.putLong(m + LibC.MSGHDR_IOV, base + iov);
                b.putLong(m + LibC.MSGHDR_IOVLEN, 1);
                b.putLong(m + LibC.MSGHDR_CONTROL, 0);
                b.putLong(m + LibC.MSGHDR_CONTROLLEN, 0);
                b.putLong(m + LibC.MSGHDR_FLAGS, 0);
            }
            done += sendMmsg(base, n);
        }
    }

    /** The native mmsghdr/iovec/sockaddr area for batched sends, made on first use. Holds the send lock. */
    private ByteBuffer batchBuffer() {
        ByteBuffer b = batch;
        if (b == null) {
            b = nativeBuffer(MAX_BATCH * (LibC.MMSGHDR_SIZE + LibC.IOVEC_SIZE + LibC.SOCKADDR_IN_SIZE));
            batch = b;
        }
        return b;
    }

    /** sendmmsg until at least one datagram is sent; returns how many were. Holds the send lock. */
    private int sendMmsg(long msgvec, int n) throws IOException {
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            int sent = LibC.sendmmsg(fd, msgvec, n, LibC.MSG_DONTWAIT);
            if (sent > 0) {
                return sent;
            }
            int errno = sent < 0 ? LibC.errno() : ErrnoException.EAGAIN;
            if (errno == ErrnoException.EAGAIN) {
                await(sendBase + POLLFDS, send, "poll(POLLOUT)");
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("sendmmsg(" + n + " datagrams)", errno);
            }
        }
    }

    /**
     * Receives into {@code dst}, waiting until something arrives. Without GRO that is one datagram; with
     * {@link #groEnabled() GRO} it may be several datagrams of one sender, back to back, each
     * {@link Received#segmentSize()} bytes but the last (which may be shorter): split them with
     * {@link Received#segmentCount()}. The position advances by the bytes stored. The caller keeps ownership of
     * {@code dst} and {@code info}.
     *
     * @param dst  a direct buffer; with GRO on it must have at least {@value #MAX_GRO_BYTES} bytes remaining
     * @param info filled with the sender, the length and the segment size
     * @return the number of bytes stored, {@link Received#length()}
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ClosedChannelException     if the socket is closed
     * @throws ReadOnlyBufferException    if {@code dst} is read-only
     * @throws IllegalArgumentException   if {@code dst} is not direct, has no room, or with GRO on has less than
     *                                    {@value #MAX_GRO_BYTES} bytes of room
     */
    public int receive(ByteBuffer dst, Received info) throws IOException {
        return receive(dst, info, true);
    }

    /**
     * As {@link #receive}, but returns -1 at once, leaving {@code dst} and {@code info} alone, when nothing is queued:
     * for draining what has already arrived before acting on a batch.
     *
     * @return the number of bytes stored, or -1 if nothing was queued
     */
    public int tryReceive(ByteBuffer dst, Received info) throws IOException {
        return receive(dst, info, false);
    }

    /**
     * Waits until a datagram is queued (a {@link #tryReceive} would return one), {@link #wakeup()} is called or the
     * socket is closed, without receiving it: one {@code poll(2)} on the socket and two eventfds; may return early.
     * For a receiver that wants to wait without holding on to its buffers. One waiting thread at a time.
     *
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ClosedChannelException     if the socket is closed
     */
    public void awaitReadable() throws IOException {
        acquire();
        try {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            pollReady(3, null, -1);
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
        } finally {
            release();
        }
    }

    /**
     * Waits until this socket or {@code tun} has something to read, {@link #wakeup()} is called, or either is closed:
     * one {@code poll(2)} over both descriptors and their eventfds, so that one thread can serve both directions of a
     * forwarder with one wake-up per event. Returns at once if something is queued already; may return early. Shares
     * {@link #awaitReadable()}'s rule: one waiting thread at a time, in either method.
     *
     * @return {@link #SOCKET_READABLE} and/or {@link #TUN_READABLE}, whichever may have something queued (an error
     *         condition counts too: the next read reports it); 0 after a {@link #wakeup()} alone
     * @throws AsynchronousCloseException if this socket or {@code tun} is closed while this method waits
     * @throws ClosedChannelException     if this socket or {@code tun} is closed
     */
    public int awaitReadable(LinuxTunDevice tun) throws IOException {
        return awaitReadable(tun, -1);
    }

    /**
     * As {@link #awaitReadable(LinuxTunDevice)}, but returns {@link #TIMED_OUT} once {@code timeoutMillis} have
     * passed with nothing to read: for a waiter that wants to run now and then while idle. A negative timeout waits
     * without limit.
     *
     * @return {@link #SOCKET_READABLE} and/or {@link #TUN_READABLE}; 0 after a {@link #wakeup()} alone;
     *         {@link #TIMED_OUT} after the timeout
     * @throws AsynchronousCloseException if this socket or {@code tun} is closed while this method waits
     * @throws ClosedChannelException     if this socket or {@code tun} is closed
     */
    public int awaitReadable(LinuxTunDevice tun, long timeoutMillis) throws IOException {
        FdLifecycle tunLife = tun.life();
        acquire();
        try {
            tunLife.acquire();
            try {
                if (life.isClosing() || tunLife.isClosing()) {
                    throw new AsynchronousCloseException();
                }
                ready.putInt(3 * LibC.POLLFD_SIZE, tun.fd());
                ready.putInt(4 * LibC.POLLFD_SIZE, tun.wakeFd());
                boolean reported = pollReady(5, tun,
                        timeoutMillis < 0 ? -1 : (int) Math.min(timeoutMillis, Integer.MAX_VALUE));
                if (life.isClosing() || tunLife.isClosing()) {
                    throw new AsynchronousCloseException();
                }
                if (!reported) {
                    return TIMED_OUT;
                }
                return (ready.getShort(6) != 0 ? SOCKET_READABLE : 0)
                        | (ready.getShort(3 * LibC.POLLFD_SIZE + 6) != 0 ? TUN_READABLE : 0);
            } finally {
                tunLife.release();
            }
        } finally {
            release();
        }
    }

    /**
     * Polls the first {@code count} entries of {@link #ready} until one reports something, then consumes any
     * {@link #wakeup()}s so that the next wait blocks again.
     *
     * @param tun     the TUN device of entries 3 and 4, for an error message; null if only the socket's are polled
     * @param timeout {@code poll(2)}'s, in milliseconds: -1 for none; after it every entry reports nothing
     * @return false if the timeout passed with nothing to report
     */
    private boolean pollReady(int count, LinuxTunDevice tun, int timeout) throws IOException {
        while (true) {
            for (int i = 0; i < count; i++) {
                ready.putShort(i * LibC.POLLFD_SIZE + 6, (short) 0);
            }
            int n = LibC.poll(readyBase, count, timeout);
            if (n >= 0) {
                if (ready.getShort(2 * LibC.POLLFD_SIZE + 6) != 0) {
                    // EAGAIN if another reset came first: nothing to consume.
                    LibC.read(wakeupFd, readyBase + 5 * LibC.POLLFD_SIZE, 8);
                }
                return n > 0;
            }
            int errno = LibC.errno();
            if (errno != ErrnoException.EINTR) {
                throw new ErrnoException(tun == null ? "poll(POLLIN)" : "poll(POLLIN, " + tun.name() + ")", errno);
            }
        }
    }

    /**
     * Makes the thread waiting in {@link #awaitReadable()} return now, or, if none waits, the next call return at
     * once: for a receiver that must look at its own state (to stop, say) while the socket stays open for its owner.
     * Signals an eventfd, so it works where no datagram could reach the socket (a namespace whose loopback is down).
     * Wakeups do not accumulate: one return consumes all of them. A no-op on a closed socket. Waits in
     * {@link #receive} are not woken. Allocates nothing.
     */
    public void wakeup() {
        try {
            acquire();
        } catch (ClosedChannelException e) {
            return;
        }
        try {
            // An eventfd write of 8 bytes only fails if the counter would overflow, which a reset prevents.
            LibC.write(wakeupFd, DirectBuffers.address(wakeupValue), 8);
        } finally {
            release();
        }
    }

    private int receive(ByteBuffer dst, Received info, boolean wait) throws IOException {
        requireNonNull(info, "info");
        if (dst.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        if (!dst.isDirect()) {
            throw new IllegalArgumentException("UdpSocket needs direct buffers");
        }
        int pos = dst.position();
        int room = dst.limit() - pos;
        if (room <= 0 || (groEnabled && room < MAX_GRO_BYTES)) {
            throw new IllegalArgumentException("a receive buffer needs room for " + (groEnabled ? MAX_GRO_BYTES : 1)
                    + " bytes: " + room);
        }
        acquire();
        try {
            synchronized (receive) {
                int n = receiveInto(DirectBuffers.address(dst) + pos, room, wait);
                if (n < 0) {
                    return -1;
                }
                int flags = receive.getInt(MSG + LibC.MSGHDR_FLAGS);
                int segment = groEnabled ? groSegmentSize() : 0;
                if (segment <= 0 || segment > n) {
                    segment = n;
                }
                info.set(be32(receive.getInt(ADDR + 4)), be16(receive.getShort(ADDR + 2)) & 0xffff, n, segment,
                        (flags & LibC.MSG_TRUNC) != 0);
                dst.position(pos + n);
                return n;
            }
        } finally {
            release();
        }
    }

    /** recvmsg into the buffer; holds the receive lock. -1 if nothing is queued and {@code wait} is false. */
    private int receiveInto(long data, int room, boolean wait) throws IOException {
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            receive.putLong(IOV, data);
            receive.putLong(IOV + 8, room);
            receive.putInt(MSG + LibC.MSGHDR_NAMELEN, LibC.SOCKADDR_IN_SIZE);
            receive.putLong(MSG + LibC.MSGHDR_CONTROLLEN, RECEIVE_CONTROL_SIZE);
            receive.putInt(MSG + LibC.MSGHDR_FLAGS, 0);
            long n = LibC.recvmsg(fd, receiveBase + MSG, wait ? 0 : LibC.MSG_DONTWAIT);
            if (n >= 0) {
                if (n == 0 && life.isClosing()) {
                    throw new AsynchronousCloseException(); // woken by close()'s shutdown
                }
                return (int) n;
            }
            int errno = LibC.errno();
            if (errno == ErrnoException.EAGAIN) {
                if (!wait) {
                    return -1;
                }
                await(receiveBase + POLLFDS, receive, "poll(POLLIN)");
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("recvmsg", errno);
            }
        }
    }

    /** The UDP_GRO control message's segment size after a recvmsg, or 0 if there is none (not coalesced). */
    private int groSegmentSize() {
        long controlLength = receive.getLong(MSG + LibC.MSGHDR_CONTROLLEN);
        int off = 0;
        while (off + LibC.CMSGHDR_SIZE <= controlLength) {
            long cmsgLength = receive.getLong(CONTROL + off);
            if (cmsgLength < LibC.CMSGHDR_SIZE || off + cmsgLength > controlLength) {
                break;
            }
            if (receive.getInt(CONTROL + off + LibC.CMSGHDR_LEVEL) == LibC.SOL_UDP
                    && receive.getInt(CONTROL + off + LibC.CMSGHDR_TYPE) == LibC.UDP_GRO
                    && cmsgLength >= LibC.CMSGHDR_SIZE + INT_SIZE) {
                return receive.getInt(CONTROL + off + LibC.CMSGHDR_SIZE);
            }
            off += (int) ((cmsgLength + 7) & ~7L);
        }
        return 0;
    }

    /** Waits until the socket is ready or the wake-up eventfd is signalled; {@code fds} holds the pollfds. */
    private void await(long pollfds, ByteBuffer fds, String call) throws IOException {
        while (true) {
            fds.putShort(POLLFDS + 6, (short) 0);
            fds.putShort(POLLFDS + LibC.POLLFD_SIZE + 6, (short) 0);
            int r = LibC.poll(pollfds, 2, -1);
            if (r >= 0) {
                return;
            }
            int errno = LibC.errno();
            if (errno != ErrnoException.EINTR) {
                throw new ErrnoException(call, errno);
            }
        }
    }

    private static void checkPayload(ByteBuffer payload, int length) {
        if (!payload.isDirect()) {
            throw new IllegalArgumentException("UdpSocket needs direct buffers");
        }
        if (length > MAX_PAYLOAD) {
            throw new IllegalArgumentException("a UDP/IPv4 payload is at most " + MAX_PAYLOAD + " bytes: " + length);
        }
    }

    private static void checkPort(int port) {
        if (port <= 0 || port > 0xffff) {
            throw new IllegalArgumentException("port out of range: " + port);
        }
    }

    /** Whether the socket is open, i.e. {@link #close()} has not been called. */
    public boolean isOpen() {
        return life.isOpen();
    }

    /**
     * Closes the socket. Idempotent; returns at once: blocked callers are woken (a receiver by {@code shutdown(2)},
     * the others through the eventfd) and fail with {@link AsynchronousCloseException}, and the descriptor is closed
     * when the last of them leaves.
     */
    @Override
    public void close() {
        try {
            life.acquire(); // holds the descriptor open (and its number ours) across the shutdown
        } catch (ClosedChannelException e) {
            return;
        }
        try {
            life.close(); // first: a receiver woken by the shutdown must see the socket closing
            if (shutDown.compareAndSet(false, true)) {
                // ENOTCONN for an unconnected UDP socket, but the shutdown is recorded and wakes blocked receivers.
                // Only the receive side: a sender racing the close must not see EPIPE.
                LibC.shutdown(fd, LibC.SHUT_RD);
            }
        } finally {
            life.release();
        }
    }

    private void acquire() throws ClosedChannelException {
        life.acquire();
    }

    private void release() {
        life.release();
    }

    @Override
    public String toString() {
        return "UdpSocket[" + localAddress + ", fd " + fd + ", sndbuf " + sendBufferSize + ", rcvbuf "
                + receiveBufferSize + (groEnabled ? ", gro" : "") + (gsoSupported ? ", gso" : "")
                + (isOpen() ? "]" : ", closed]");
    }

    /**
     * What one {@link #receive} stored: the sender, the length and how to split it into datagrams. Caller-owned and
     * mutable so that receiving allocates nothing; reuse one per receiving thread.
     */
    public static final class Received {
        private int address;
        private int port;
        private int length;
        private int segmentSize;
        private boolean truncated;

        /** An empty record for {@link #receive} to fill. */
        public Received() {
        }

        /**
         * Sets every field, as {@link #receive} does; for other datagram sources (in-memory ports in tests and
         * benchmarks) that hand the data plane the same record.
         */
        public void set(int address, int port, int length, int segmentSize, boolean truncated) {
            this.address = address;
            this.port = port;
            this.length = length;
            this.segmentSize = segmentSize;
            this.truncated = truncated;
        }

        /** The sender's IPv4 address in network order. */
        public int address() {
            return address;
        }

        /** The sender's port. */
        public int port() {
            return port;
        }

        /** The number of bytes stored: one datagram, or with GRO several back to back. */
        public int length() {
            return length;
        }

        /**
         * The length of every datagram in the run but the last, which may be shorter; equal to {@link #length()} when
         * one datagram arrived (0 for an empty datagram).
         */
        public int segmentSize() {
            return segmentSize;
        }

        /** The number of datagrams stored: {@code ceil(length / segmentSize)}, 1 for an empty datagram. */
        public int segmentCount() {
            return length == 0 ? 1 : (length + segmentSize - 1) / segmentSize;
        }

        /** Whether the datagram was longer than the buffer and its tail was dropped (only possible without GRO). */
        public boolean truncated() {
            return truncated;
        }

        @Override
        public String toString() {
            return "Received[" + dottedQuad(address) + ":" + port + ", " + length + " bytes, segment " + segmentSize
                    + (truncated ? ", truncated]" : "]");
        }
    }

    /**
     * Socket options, immutable; build with {@link #builder()}. Defaults: buffer sizes 0 (leave the kernel's
     * defaults), GRO off.
     */
    public static final class Options {
        private static final Options DEFAULTS = builder().build();

        private final int sendBufferSize;
        private final int receiveBufferSize;
        private final boolean gro;

        private Options(Builder b) {
            this.sendBufferSize = b.sendBufferSize;
            this.receiveBufferSize = b.receiveBufferSize;
            this.gro = b.gro;
        }

        /** The defaults: kernel buffer sizes, no GRO. */
        public static Options defaults() {
            return DEFAULTS;
        }

        /** A builder starting from the defaults. */
        public static Builder builder() {
            return new Builder();
        }

        /** The requested {@code SO_SNDBUF} in bytes (the kernel doubles it), 0 for the kernel default. */
        public int sendBufferSize() {
            return sendBufferSize;
        }

        /** The requested {@code SO_RCVBUF} in bytes (the kernel doubles it), 0 for the kernel default. */
        public int receiveBufferSize() {
            return receiveBufferSize;
        }

        /** Whether to ask for {@code UDP_GRO}. */
        public boolean gro() {
            return gro;
        }

        @Override
        public String toString() {
            return "Options[sndbuf " + sendBufferSize + ", rcvbuf " + receiveBufferSize + ", gro " + gro + "]";
        }

        /** Builds {@link Options}. */
        public static final class Builder {
            private int sendBufferSize;
            private int receiveBufferSize;
            private boolean gro;

            private Builder() {
            }

            /**
             * The send buffer size to request: {@code SO_SNDBUFFORCE} (CAP_NET_ADMIN), else {@code SO_SNDBUF}
             * capped at {@code net.core.wmem_max}; 0 leaves the default.
             */
            public Builder sendBufferSize(int bytes) {
                this.sendBufferSize = checkSize(bytes);
                return this;
            }

            /**
             * The receive buffer size to request: {@code SO_RCVBUFFORCE} (CAP_NET_ADMIN), else {@code SO_RCVBUF}
             * capped at {@code net.core.rmem_max}; 0 leaves the default.
             */
            public Builder receiveBufferSize(int bytes) {
                this.receiveBufferSize = checkSize(bytes);
                return this;
            }

            /** Whether to ask for UDP GRO (coalesced receives, see {@link UdpSocket#receive}). */
            public Builder gro(boolean gro) {
                this.gro = gro;
                return this;
            }

            private static int checkSize(int bytes) {
                // The kernel doubles the value into an int.
                if (bytes < 0 || bytes > Integer.MAX_VALUE / 2) {
                    throw new IllegalArgumentException("buffer size out of range: " + bytes);
                }
                return bytes;
            }

            /** The options. */
            public Options build() {
                return new Options(this);
            }
        }
    }
}
