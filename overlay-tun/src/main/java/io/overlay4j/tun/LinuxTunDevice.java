package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.overlay4j.ErrnoException;
import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import io.overlay4j.tun.internal.DirectBuffers;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.FdLifecycle;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Linux TUN device ({@code IFF_TUN | IFF_NO_PI}: raw IP packets, no packet-info header), as flannel's udp backend
 * creates it. Open one with {@link #open(TunOptions)}; closing it removes the (non-persistent) device.
 *
 * <p>The device lives in the network namespace of the thread that opens it (run {@code open} inside
 * {@link NetworkNamespace#call} to create it elsewhere); reads and writes work from any thread. {@code open} sets the
 * MTU, raises {@code txqueuelen} to {@value #TX_QUEUE_LEN} and disables IPv6 on the device (best effort, so no router
 * solicitations arrive); it leaves the link down and unaddressed: that is the {@link io.overlay4j.RouteProgrammer}'s
 * job.
 *
 * <p>I/O: the file descriptor is non-blocking. {@link #read} calls {@code read(2)} directly and only when no packet is
 * queued {@code poll(2)}s on the device and an eventfd that {@link #close()} signals, so a blocked reader returns
 * promptly with {@link AsynchronousCloseException}. The descriptor is closed only after the last in-flight
 * {@code read}/{@code write} has left the kernel, so a concurrent close can never make a reader use a reused
 * descriptor number. Direct buffers are passed to the kernel as they are and nothing is allocated per packet; heap
 * buffers are copied through a per-direction direct scratch buffer. One reader and any number of writer threads may
 * use the device at once.
 *
 * <p>Offloads ({@link TunOptions#offloads()}): the device is opened with {@code IFF_VNET_HDR} as well, the virtio
 * header size set to {@value #VNET_HDR_LEN} ({@code TUNSETVNETHDRSZ}) and {@code TUNSETOFFLOAD} asked for
 * {@code TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6}, then, if the kernel refuses (before 6.2
 * it knows no USO), for the same without USO. If even that is refused the device is closed and reopened plain, and
 * {@link #vnetHeader()} says so. With a virtio header every {@link #read} returns the 10-byte
 * {@code virtio_net_hdr} plus a packet of up to 65,535 bytes (a TSO/USO super-packet may exceed the MTU, and a
 * packet may carry a partial checksum: {@code VIRTIO_NET_HDR_F_NEEDS_CSUM}), and every {@link #write} must start
 * with one (all zero for a complete ordinary packet).
 */
public final class LinuxTunDevice implements TunDevice {
    private static final Logger LOG = LoggerFactory.getLogger(LinuxTunDevice.class);

    /**
     * The {@code txqueuelen} set on every device (the kernel's TUN default is 500), which sizes the queue of packets
     * waiting for the reader: about 45 ms of 1,400-byte packets at 1 Gb/s, so a reader that loses the CPU for a while
     * on a busy host does not cost packets (TCP's small-queue limit keeps a flow's share of it small).
     */
    public static final int TX_QUEUE_LEN = 4096;

    /** The largest packet a TUN device carries. */
    private static final int MAX_PACKET = 65535;

    // <linux/if_tun.h>, <linux/virtio_net.h>: here rather than in LibC because only this class uses them.
    /** {@code IFF_VNET_HDR}: every packet is preceded by a {@code struct virtio_net_hdr}. */
    private static final short IFF_VNET_HDR = 0x4000;
    /** {@code TUNSETOFFLOAD}: its argument is the {@code TUN_F_*} flags by value. */
    private static final long TUNSETOFFLOAD = 0x400454d0L;
    /** {@code TUNSETVNETHDRSZ}: its argument points to an int. */
    private static final long TUNSETVNETHDRSZ = 0x400454d8L;
    /**
     * A system property for tests of the fallback: when {@code true}, {@link #open} behaves as on a kernel that
     * refuses {@code TUNSETOFFLOAD} and returns a plain device even when offloads are asked for.
     */
    public static final String REFUSE_OFFLOADS_PROPERTY = "overlay4j.tun.refuseOffloads";

    /** {@code sizeof(struct virtio_net_hdr)}: the header used with offloads. */
    public static final int VNET_HDR_LEN = 10;
    /** {@code TUN_F_CSUM}: the kernel may hand over packets with partial checksums. */
    public static final int TUN_F_CSUM = 0x01;
    /** {@code TUN_F_TSO4}: TCP/IPv4 super-packets (needs {@link #TUN_F_CSUM}). */
    public static final int TUN_F_TSO4 = 0x02;
    /** {@code TUN_F_TSO6}: TCP/IPv6 super-packets. */
    public static final int TUN_F_TSO6 = 0x04;
    /** {@code TUN_F_TSO_ECN}: super-packets with CWR set. */
    public static final int TUN_F_TSO_ECN = 0x08;
    /** {@code TUN_F_USO4}: UDP/IPv4 super-datagrams (kernel 6.2+). */
    public static final int TUN_F_USO4 = 0x20;
    /** {@code TUN_F_USO6}: UDP/IPv6 super-datagrams (kernel 6.2+). */
    public static final int TUN_F_USO6 = 0x40;
    /** The offloads asked for first. */
    private static final int OFFLOADS_WITH_USO = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
    /** The offloads asked for when the kernel knows no USO. */
    private static final int OFFLOADS_TSO = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

    private final String name;
    private final int index;
    private final int mtu;
    private final int fd;
    /** The eventfd that {@link #close()} signals. */
    private final int wakeFd;
    private final boolean vnetHeader;
    private final int offloadFlags;
    /** The largest frame a read may return and a write may pass: the largest packet plus the virtio header. */
    private final int maxFrame;
    /** Bit 31: closed; bits 0-30: number of threads inside read/write/close that still use the descriptors. */
    private final FdLifecycle life;
    /** pollfd[2] for the reader: {tun, eventfd}. */
    private final Memory readPoll = new Memory(2 * LibC.POLLFD_SIZE);
    /** pollfd[2] for the writer: {tun, eventfd}. */
    private final Memory writePoll = new Memory(2 * LibC.POLLFD_SIZE);
    /** pollfd[2] for {@link #awaitReadable()}: {tun, eventfd}; one waiter at a time. */
    private final Memory readyPoll = new Memory(2 * LibC.POLLFD_SIZE);
    /** The eventfd increment close() writes; native so that close() allocates nothing either. */
    private ByteBuffer readScratch;
    private ByteBuffer writeScratch;
    private final Object heapWriteLock = new Object();

    private LinuxTunDevice(String name, int index, int mtu, int fd, int wakeFd, boolean vnetHeader,
                           int offloadFlags) {
        this.name = name;
        this.index = index;
        this.mtu = mtu;
        this.fd = fd;
        this.wakeFd = wakeFd;
        this.vnetHeader = vnetHeader;
        this.offloadFlags = offloadFlags;
        this.maxFrame = MAX_PACKET + (vnetHeader ? VNET_HDR_LEN : 0);
        this.life = new FdLifecycle(fd, wakeFd, () -> {
            readPoll.close();
            writePoll.close();
            readyPoll.close();
            LOG.debug("closed TUN device {} (fd {})", name, fd);
        });
        readPoll.setInt(0, fd);
        readPoll.setShort(4, LibC.POLLIN);
        readPoll.setInt(LibC.POLLFD_SIZE, wakeFd);
        readPoll.setShort(LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        writePoll.setInt(0, fd);
        writePoll.setShort(4, LibC.POLLOUT);
        writePoll.setInt(LibC.POLLFD_SIZE, wakeFd);
        writePoll.setShort(LibC.POLLFD_SIZE + 4, LibC.POLLIN);
        readyPoll.setInt(0, fd);
        readyPoll.setShort(4, LibC.POLLIN);
        readyPoll.setInt(LibC.POLLFD_SIZE, wakeFd);
        readyPoll.setShort(LibC.POLLFD_SIZE + 4, LibC.POLLIN);
    }

    /**
     * Creates a TUN device in the calling thread's network namespace.
     *
     * @param options the name or template ({@code flannel%d}: the kernel picks the first free number), the MTU, and
     *                whether to try virtio headers and offloads (see the class comment; falls back to a plain device)
     * @return the open device; {@link #name()} is the name the kernel gave it, {@link #vnetHeader()} and
     *         {@link #offloadFlags()} what it got
     * @throws io.overlay4j.OverlayException of kind {@code NOT_PERMITTED} saying what is missing if the kernel refuses
     *                                       with EPERM/EACCES or {@code /dev/net/tun} is absent
     * @throws ErrnoException                naming the failed call for other kernel errors (e.g. EBUSY: the name is
     *                                       taken by a device of another type)
     */
    public static LinuxTunDevice open(TunOptions options) throws IOException {
        requireNonNull(options, "options");
        if (options.offloads()) {
            LinuxTunDevice device = open(options, true);
            if (device != null) {
                return device;
            }
        }
        return open(options, false);
    }

    /** Opens the device; with {@code vnet}, returns null (having cleaned up) if the kernel grants no offloads. */
    private static LinuxTunDevice open(TunOptions options, boolean vnet) throws IOException {
        int fd = -1;
        int sock = -1;
        int wakeFd = -1;
        boolean ok = false;
        Memory ifr = new Memory(LibC.IFREQ_SIZE);
        try {
            fd = LibC.open(TunCapabilities.TUN_PATH, LibC.O_RDWR | LibC.O_CLOEXEC | LibC.O_NONBLOCK, 0);
            if (fd < 0) {
                ErrnoException e = Errno.last("open(" + TunCapabilities.TUN_PATH + ")");
                if (e.errno() == ErrnoException.ENOENT || e.errno() == ErrnoException.EPERM
                        || e.errno() == ErrnoException.EACCES) {
                    throw TunCapabilities.notPermitted(e);
                }
                throw e;
            }
            ifreq(ifr, options.name());
            ifr.setShort(LibC.IFREQ_UNION_OFFSET, (short) (LibC.IFF_TUN | LibC.IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0)));
            if (LibC.ioctl(fd, LibC.TUNSETIFF, ifr) < 0) {
                ErrnoException e = Errno.last("ioctl(TUNSETIFF " + options.name() + ")");
                if (e.errno() == ErrnoException.EPERM || e.errno() == ErrnoException.EACCES) {
                    throw TunCapabilities.notPermitted(e);
                }
                throw e;
            }
            String name = ifr.getString(0, StandardCharsets.US_ASCII.name());
            int offloads = 0;
            if (vnet) {
                offloads = negotiateOffloads(fd, name, ifr);
                if (offloads == 0) {
                    return null; // the finally block closes fd; the device goes with it
                }
            }

            sock = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
            Errno.check(sock, "socket(AF_INET, SOCK_DGRAM)");
            ifreq(ifr, name);
            ifr.setInt(LibC.IFREQ_UNION_OFFSET, options.mtu());
            Errno.check(LibC.ioctl(sock, LibC.SIOCSIFMTU, ifr), "ioctl(SIOCSIFMTU " + name + " " + options.mtu()
                    + ")");
            ifreq(ifr, name);
            ifr.setInt(LibC.IFREQ_UNION_OFFSET, TX_QUEUE_LEN);
            if (LibC.ioctl(sock, LibC.SIOCSIFTXQLEN, ifr) < 0) {
                LOG.debug("cannot raise txqueuelen of {}: {}", name, Errno.last("ioctl(SIOCSIFTXQLEN)").getMessage());
            }
            ifreq(ifr, name);
            Errno.check(LibC.ioctl(sock, LibC.SIOCGIFINDEX, ifr), "ioctl(SIOCGIFINDEX " + name + ")");
            int index = ifr.getInt(LibC.IFREQ_UNION_OFFSET);
            disableIpv6(name);
            acceptLocal(name);

            wakeFd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
            Errno.check(wakeFd, "eventfd");
            LinuxTunDevice device = new LinuxTunDevice(name, index, options.mtu(), fd, wakeFd, vnet, offloads);
            ok = true;
            if (vnet) {
                LOG.info("opened TUN device {} (index {}, mtu {}, fd {}) with virtio-net headers and offloads {}",
                        name, index, options.mtu(), fd, describeOffloads(offloads));
            } else {
                LOG.debug("opened TUN device {} (index {}, mtu {}, fd {})", name, index, options.mtu(), fd);
            }
            return device;
        } finally {
            ifr.close();
            Errno.closeQuietly(sock);
            if (!ok) {
                Errno.closeQuietly(wakeFd);
                Errno.closeQuietly(fd);
            }
        }
    }

    /**
     * Two connected devices that are not kernel interfaces: each packet (frame, with {@code vnetHeader}) written to one
     * is read whole from the other, over a {@code SOCK_SEQPACKET} socket pair. They are {@code LinuxTunDevice}s with
     * the same read, write, poll and close code as a real device, so a data plane can be exercised (its JIT warmed up,
     * or tested) without touching the kernel's routing. {@link #index()} is 0; {@link #offloadFlags()} is
     * {@link #TUN_F_CSUM} | {@link #TUN_F_TSO4} with {@code vnetHeader}, else 0.
     *
     * @return the two ends
     * @throws ErrnoException naming the failed call
     */
    public static LinuxTunDevice[] openPair(String name, int mtu, boolean vnetHeader) throws IOException {
        requireNonNull(name, "name");
        if (mtu < 68 || mtu > MAX_PACKET) {
            throw new IllegalArgumentException("MTU must be 68.." + MAX_PACKET + ": " + mtu);
        }
        int[] fds = {-1, -1, -1, -1};
        boolean ok = false;
        Memory sv = new Memory(8);
        try {
            Errno.check(LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_SEQPACKET | LibC.SOCK_NONBLOCK | LibC.SOCK_CLOEXEC,
                    0, Pointer.nativeValue(sv)), "socketpair(AF_UNIX, SOCK_SEQPACKET)");
            fds[0] = sv.getInt(0);
            fds[1] = sv.getInt(4);
            fds[2] = Errno.check(LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK), "eventfd");
            fds[3] = Errno.check(LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK), "eventfd");
            int flags = vnetHeader ? TUN_F_CSUM | TUN_F_TSO4 : 0;
            LinuxTunDevice[] pair = {
                new LinuxTunDevice(name + "-a", 0, mtu, fds[0], fds[2], vnetHeader, flags),
                new LinuxTunDevice(name + "-b", 0, mtu, fds[1], fds[3], vnetHeader, flags)
            };
            ok = true;
            return pair;
        } finally {
            sv.close();
            if (!ok) {
                for (int fd : fds) {
                    Errno.closeQuietly(fd);
                }
            }
        }
    }

    /**
     * Sets the virtio header size and the offload flags on a device opened with {@code IFF_VNET_HDR}: all of
     * {@link #OFFLOADS_WITH_USO}, else {@link #OFFLOADS_TSO}.
     *
     * @return the flags the kernel accepted, 0 if it accepted none (the caller falls back to a plain device)
     */
    private static int negotiateOffloads(int fd, String name, Memory scratch) {
        scratch.clear();
        scratch.setInt(0, VNET_HDR_LEN);
        if (LibC.ioctl(fd, TUNSETVNETHDRSZ, scratch) < 0) {
            // 10 is the kernel's default anyway; only a kernel without the ioctl gets here.
            LOG.debug("ioctl(TUNSETVNETHDRSZ {}) failed: {}", name, Errno.last("ioctl(TUNSETVNETHDRSZ)").getMessage());
        }
        if (Boolean.getBoolean(REFUSE_OFFLOADS_PROPERTY)) {
            LOG.warn("{} is set: behaving as a kernel that refuses TUN offloads on {}", REFUSE_OFFLOADS_PROPERTY, name);
            return 0;
        }
        // TUNSETOFFLOAD takes the flags by value in the pointer-sized argument.
        if (LibC.ioctl(fd, TUNSETOFFLOAD, new Pointer(OFFLOADS_WITH_USO)) == 0) {
            return OFFLOADS_WITH_USO;
        }
        ErrnoException withUso = Errno.last("ioctl(TUNSETOFFLOAD " + name + " " + describeOffloads(OFFLOADS_WITH_USO)
                + ")");
        if (LibC.ioctl(fd, TUNSETOFFLOAD, new Pointer(OFFLOADS_TSO)) == 0) {
            LOG.debug("{}; using {}", withUso.getMessage(), describeOffloads(OFFLOADS_TSO));
            return OFFLOADS_TSO;
        }
        ErrnoException tso = Errno.last("ioctl(TUNSETOFFLOAD " + name + " " + describeOffloads(OFFLOADS_TSO) + ")");
        LOG.warn("{}; reopening {} without virtio-net headers and offloads", tso.getMessage(), name);
        return 0;
    }

    /** The names of {@code TUN_F_*} flags, e.g. {@code CSUM|TSO4|TSO6}. */
    static String describeOffloads(int flags) {
        StringBuilder sb = new StringBuilder();
        String[] names = {"CSUM", "TSO4", "TSO6", "TSO_ECN", "UFO", "USO4", "USO6"};
        for (int bit = 0; bit < names.length; bit++) {
            if ((flags & 1 << bit) != 0) {
                sb.append(sb.length() == 0 ? "" : "|").append(names[bit]);
            }
        }
        return sb.length() == 0 ? "none" : sb.toString();
    }

    private static void ifreq(Memory ifr, String name) {
        byte[] bytes = name.getBytes(StandardCharsets.US_ASCII);
        if (bytes.length >= LibC.IFNAMSIZ) {
            throw new IllegalArgumentException("interface name longer than 15 bytes: " + name);
        }
        ifr.clear();
        ifr.write(0, bytes, 0, bytes.length);
    }

    /**
     * Writes 1 to {@code /proc/sys/net/ipv4/conf/<name>/accept_local}: packets the data plane writes into the device
     * with the device's own address as source (ICMP errors, as flannel sends them from flannel0's address) would
     * otherwise be dropped by the kernel as martians.
     */
    private static void acceptLocal(String name) {
        Path p = Path.of("/proc/sys/net/ipv4/conf", name, "accept_local");
        try {
            Files.writeString(p, "1");
        } catch (IOException e) {
            LOG.warn("cannot set {}: {}; ICMP errors from the device's own address will be dropped", p,
                    e.toString());
        }
    }

    /** Writes 1 to {@code /proc/sys/net/ipv6/conf/<name>/disable_ipv6}; the calling thread's netns is the device's. */
    private static void disableIpv6(String name) {
        Path p = Path.of("/proc/sys/net/ipv6/conf", name, "disable_ipv6");
        try {
            Files.writeString(p, "1");
        } catch (NoSuchFileException e) {
            LOG.debug("{} is absent (no IPv6 in this kernel): nothing to disable", p);
        } catch (IOException e) {
            LOG.debug("cannot disable IPv6 on {}: {}", name, e.toString());
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public int mtu() {
        return mtu;
    }

    /**
     * Whether the device was opened with virtio-net headers ({@code IFF_VNET_HDR}): then every read returns and every
     * write must start with a {@value #VNET_HDR_LEN}-byte {@code struct virtio_net_hdr}, and packets may be
     * super-packets of up to 65,535 bytes. False unless {@link TunOptions#offloads()} was asked for and granted.
     */
    @Override
    public boolean vnetHeader() {
        return vnetHeader;
    }

    /**
     * The {@code TUN_F_*} offloads the kernel accepted ({@link #TUN_F_CSUM}, {@link #TUN_F_TSO4}, ...), 0 for a
     * plain device.
     */
    public int offloadFlags() {
        return offloadFlags;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Stores at most {@code dst.remaining()} bytes: the kernel drops the rest of a longer packet. The caller keeps
     * ownership of {@code dst}. With {@link #vnetHeader()} the bytes are the virtio header and the packet, so
     * {@code dst} should have 65,545 bytes remaining.
     *
     * @return the number of bytes stored (the packet length unless it was truncated)
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     * @throws ReadOnlyBufferException    if {@code dst} is read-only
     * @throws IllegalArgumentException   if {@code dst} has no bytes remaining
     */
    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (dst.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        int pos = dst.position();
        int rem = dst.limit() - pos;
        if (rem <= 0) {
            throw new IllegalArgumentException("no room in the buffer for a packet");
        }
        acquire();
        try {
            if (dst.isDirect()) {
                int n = readInto(DirectBuffers.address(dst) + pos, rem);
                dst.position(pos + n);
                return n;
            }
            ByteBuffer scratch = readScratch;
            if (scratch == null) {
                scratch = ByteBuffer.allocateDirect(maxFrame);
                readScratch = scratch;
            }
            int n = readInto(DirectBuffers.address(scratch), Math.min(rem, maxFrame));
            scratch.clear().limit(n);
            dst.put(scratch);
            return n;
        } finally {
            release();
        }
    }

    /** True: {@link #tryRead} is one non-blocking {@code read(2)}, {@link #awaitReadable} one {@code poll(2)}. */
    @Override
    public boolean pollable() {
        return true;
    }

    /**
     * {@inheritDoc}
     *
     * <p>One {@code read(2)} on the non-blocking descriptor; a direct {@code dst} only.
     *
     * @throws IllegalArgumentException if {@code dst} is not direct or has no bytes remaining
     */
    @Override
    public int tryRead(ByteBuffer dst) throws IOException {
        if (dst.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        int pos = dst.position();
        int rem = dst.limit() - pos;
        if (rem <= 0 || !dst.isDirect()) {
            throw new IllegalArgumentException("tryRead needs a direct buffer with room for a packet");
        }
        acquire();
        try {
            while (true) {
                long n = LibC.read(fd, DirectBuffers.address(dst) + pos, rem);
                if (n >= 0) {
                    int stored = (int) Math.min(n, rem);
                    dst.position(pos + stored);
                    return stored;
                }
                int errno = LibC.errno();
                if (errno == ErrnoException.EAGAIN) {
                    return -1;
                }
                if (errno != ErrnoException.EINTR) {
                    throw new ErrnoException("read(" + name + ")", errno);
                }
            }
        } finally {
            release();
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>One {@code poll(2)} on the device and the eventfd that {@link #close()} signals. One waiting thread at a
     * time.
     *
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     */
    @Override
    public void awaitReadable() throws IOException {
        acquire();
        try {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            await(readyPoll, "POLLIN");
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
        } finally {
            release();
        }
    }

    /**
     * As {@link #awaitReadable()}, but gives up after {@code timeoutMillis}: for a waiter that has something else to
     * do when the device stays quiet that long.
     *
     * @param timeoutMillis the longest wait, 0 or more
     * @return true if a packet may be queued (or the wait returned early), false if the time ran out
     * @throws AsynchronousCloseException if {@link #close()} is called while this method waits
     */
    public boolean awaitReadable(long timeoutMillis) throws IOException {
        if (timeoutMillis < 0) {
            throw new IllegalArgumentException("negative timeout: " + timeoutMillis);
        }
        int timeout = (int) Math.min(timeoutMillis, Integer.MAX_VALUE);
        acquire();
        try {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            boolean ready = await(readyPoll, "POLLIN", timeout);
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            return ready;
        } finally {
            release();
        }
    }

    /** The descriptors' close protocol, for a wait that polls this device together with a socket. */
    FdLifecycle life() {
        return life;
    }

    /** The device's descriptor. */
    int fd() {
        return fd;
    }

    /** The eventfd that {@link #close()} signals. */
    int wakeFd() {
        return wakeFd;
    }

    private int readInto(long address, int length) throws IOException {
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            long n = LibC.read(fd, address, length);
            if (n >= 0) {
                // With IFF_NO_PI the kernel returns the packet length even when it copied less.
                return (int) Math.min(n, length);
            }
            int errno = LibC.errno();
            if (errno == ErrnoException.EAGAIN) {
                await(readPoll, "POLLIN");
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("read(" + name + ")", errno);
            }
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>The caller keeps ownership of {@code src}. With {@link #vnetHeader()} the bytes must be a virtio header
     * followed by the packet.
     *
     * @throws IllegalArgumentException if {@code src} has nothing remaining or more than 65535 bytes (with a virtio
     *                                  header: not more than the header, or more than 65545 bytes)
     */
    @Override
    public int write(ByteBuffer src) throws IOException {
        int pos = src.position();
        int rem = src.limit() - pos;
        int min = vnetHeader ? VNET_HDR_LEN + 1 : 1;
        if (rem < min || rem > maxFrame) {
            throw new IllegalArgumentException("a " + (vnetHeader ? "frame" : "packet") + " must be " + min + ".."
                    + maxFrame + " bytes: " + rem);
        }
        acquire();
        try {
            int n;
            if (src.isDirect()) {
                n = writeFrom(DirectBuffers.address(src) + pos, rem);
            } else {
                n = writeHeap(src, pos, rem);
            }
            src.position(src.limit());
            return n;
        } finally {
            release();
        }
    }

    /** Heap buffers share one scratch buffer, so writers of heap buffers take turns. */
    private int writeHeap(ByteBuffer src, int pos, int rem) throws IOException {
        synchronized (heapWriteLock) {
            return writeHeapLocked(src, pos, rem);
        }
    }

    private int writeHeapLocked(ByteBuffer src, int pos, int rem) throws IOException {
        ByteBuffer scratch = writeScratch;
        if (scratch == null) {
            scratch = ByteBuffer.allocateDirect(maxFrame);
            writeScratch = scratch;
        }
        scratch.clear();
        if (src.hasArray()) {
            scratch.put(src.array(), src.arrayOffset() + pos, rem);
        } else {
            scratch.put(src.duplicate()); // a read-only heap buffer hides its array
        }
        return writeFrom(DirectBuffers.address(scratch), rem);
    }

    private int writeFrom(long address, int length) throws IOException {
        while (true) {
            if (life.isClosing()) {
                throw new AsynchronousCloseException();
            }
            long n = LibC.write(fd, address, length);
            if (n >= 0) {
                return (int) n;
            }
            int errno = LibC.errno();
            if (errno == ErrnoException.EAGAIN) {
                await(writePoll, "POLLOUT");
            } else if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("write(" + name + ")", errno);
            }
        }
    }

    /** Waits until the device is ready or the wake-up eventfd is signalled. */
    private void await(Memory pollfds, String event) throws IOException {
        await(pollfds, event, -1);
    }

    /**
     * Polls until {@code pollfds} report something or {@code timeout} milliseconds pass (-1: no limit); {@code event}
     * names the wait in an error (built only then).
     *
     * @return whether something was reported
     */
    private boolean await(Memory pollfds, String event, int timeout) throws IOException {
        long address = Pointer.nativeValue(pollfds);
        while (true) {
            pollfds.setShort(6, (short) 0);
            pollfds.setShort(LibC.POLLFD_SIZE + 6, (short) 0);
            int r = LibC.poll(address, 2, timeout);
            if (r >= 0) {
                return r > 0;
            }
            int errno = LibC.errno();
            if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("poll(" + name + " " + event + ")", errno);
            }
        }
    }

    @Override
    public boolean isOpen() {
        return life.isOpen();
    }

    /**
     * {@inheritDoc}
     *
     * <p>Returns at once; if a reader or writer is inside the kernel the descriptor is closed when the last of them
     * leaves, which the eventfd makes prompt.
     */
    @Override
    public void close() {
        life.close();
    }

    private void acquire() throws ClosedChannelException {
        life.acquire();
    }

    private void release() {
        life.release();
    }

    @Override
    public String toString() {
        return "LinuxTunDevice[" + name + ", index " + index + ", mtu " + mtu
                + (vnetHeader ? ", vnet offloads " + describeOffloads(offloadFlags) : "")
                + (isOpen() ? "]" : ", closed]");
    }
}
