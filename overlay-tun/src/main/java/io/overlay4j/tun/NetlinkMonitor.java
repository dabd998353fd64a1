package io.overlay4j.tun;

import static io.overlay4j.tun.internal.Rtnetlink.*;
import static java.util.Objects.requireNonNull;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.overlay4j.ErrnoException;
import io.overlay4j.Route;
import io.overlay4j.tun.internal.DirectBuffers;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Follows rtnetlink notifications (like {@code ip monitor link route neigh}) on a thread of its own, so that a backend
 * notices at once when a device it made is deleted or a route it installed disappears, instead of polling.
 *
 * <pre>{@code
 * try (NetlinkMonitor monitor = NetlinkMonitor.start("vxlan-watch", EnumSet.of(NetlinkMonitor.Group.LINK),
 *         new NetlinkMonitor.Listener() {
 *             public void linkDeleted(Link link) { if (link.name().equals("flannel.1")) recreate(); }
 *         })) {
 *     ...
 * }
 * }</pre>
 *
 * <p>It listens in the network namespace of the thread that starts it. Listener methods run on the monitor's thread,
 * one at a time, in the kernel's order; an exception thrown by one is logged and does not stop the monitor. When the
 * kernel drops notifications because the socket's buffer overflowed ({@code ENOBUFS}), {@link Listener#eventsLost()}
 * says so: the listener must then re-read the state it cares about.
 */
public final class NetlinkMonitor implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NetlinkMonitor.class);
    private static final int BUFFER_SIZE = 256 * 1024;
    private static final int RECEIVE_BUFFER_SIZE = 4 << 20;
    private static final int ENOBUFS = 105;

    /** The notification groups a monitor can follow. */
    public enum Group {
        /** Devices added, changed and deleted ({@code RTNLGRP_LINK}). */
        LINK(RTMGRP_LINK),
        /** IPv4 routes added and deleted ({@code RTNLGRP_IPV4_ROUTE}). */
        IPV4_ROUTE(RTMGRP_IPV4_ROUTE),
        /** Neighbour (ARP) and FDB entries added and deleted ({@code RTNLGRP_NEIGH}). */
        NEIGHBOUR(RTMGRP_NEIGH);

        private final int mask;

        Group(int mask) {
            this.mask = mask;
        }
    }

    /** Receives notifications; every method has an empty default. */
    public interface Listener {
        /** A device appeared or changed (flags, MTU, address, ...). */
        default void linkChanged(Link link) {
        }

        /** A device was deleted. */
        default void linkDeleted(Link link) {
        }

        /** An IPv4 unicast route of table main was added or replaced. */
        default void routeAdded(Route route) {
        }

        /**
         * An IPv4 unicast route of table main was deleted. The kernel does not announce the IPv4 routes it flushes
         * because their device went down or was deleted: follow {@link Group#LINK} for those.
         */
        default void routeDeleted(Route route) {
        }

        /** An IPv4 neighbour entry was added or changed. */
        default void neighbourChanged(Neighbour neighbour) {
        }

        /** An IPv4 neighbour entry was deleted. */
        default void neighbourDeleted(Neighbour neighbour) {
        }

        /** An FDB entry was added or changed. */
        default void fdbChanged(FdbEntry entry) {
        }

        /** An FDB entry was deleted. */
        default void fdbDeleted(FdbEntry entry) {
        }

        /** The kernel dropped notifications (the socket overflowed): re-read whatever state matters. */
        default void eventsLost() {
        }
    }

    private final int fd;
    private final int wakeFd;
    private final Set<Group> groups;
    private final Listener listener;
    private final ByteBuffer rx;
    private final long rxAddress;
    private final Memory pollFds = new Memory(2L * LibC.POLLFD_SIZE);
    private final Map<Integer, String> names = new ConcurrentHashMap<>();
    private final Thread thread;
    private volatile boolean closing;
    private boolean closed;
    private boolean exited;
    private boolean fdsClosed;

    private NetlinkMonitor(int fd, int wakeFd, Set<Group> groups, Listener listener, String threadName,
                           ThreadFactory threads) {
        this.fd = fd;
        this.wakeFd = wakeFd;
        this.groups = groups;
        this.listener = listener;
        this.rx = ByteBuffer.allocateDirect(BUFFER_SIZE).order(ByteOrder.nativeOrder());
        this.rxAddress = DirectBuffers.address(rx);
        if (threads != null) {
            this.thread = requireNonNull(threads.newThread(this::run), "thread factory returned null");
        } else {
            this.thread = new Thread(this::run, threadName);
            this.thread.setDaemon(true);
        }
    }

    /**
     * Opens a notification socket in the calling thread's network namespace, subscribed to {@code groups}, and starts
     * delivering to {@code listener} on a daemon thread named {@code threadName}. Notifications that happen after this
     * returns are delivered; read the current state after starting the monitor, not before, to miss nothing.
     *
     * @throws ErrnoException naming the failed call
     */
    public static NetlinkMonitor start(String threadName, Set<Group> groups, Listener listener) throws IOException {
        return start(threadName, groups, listener, null);
    }

    /**
     * As {@link #start(String, Set, Listener)}, with the delivering thread made by {@code threads} (which names it);
     * {@code null} for a daemon thread named {@code threadName}. The socket is opened in the calling thread's network
     * namespace whatever the factory's threads do.
     */
    public static NetlinkMonitor start(String threadName, Set<Group> groups, Listener listener,
                                       ThreadFactory threads) throws IOException {
        requireNonNull(threadName, "threadName");
        requireNonNull(listener, "listener");
        Set<Group> subscribed = groups.isEmpty() ? EnumSet.noneOf(Group.class) : EnumSet.copyOf(groups);
        // Links are always followed, for the names of the devices that routes and neighbours refer to.
        int mask = RTMGRP_LINK;
        for (Group g : subscribed) {
            mask |= g.mask;
        }
        int fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC | LibC.SOCK_NONBLOCK,
                LibC.NETLINK_ROUTE);
        Errno.check(fd, "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)");
        int wake = -1;
        boolean ok = false;
        try (Memory m = new Memory(LibC.SOCKADDR_NL_SIZE)) {
            long a = Pointer.nativeValue(m);
            m.setInt(0, RECEIVE_BUFFER_SIZE);
            // Forcing the size needs CAP_NET_ADMIN, which a monitoring node has; fall back to the capped size.
            if (LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUFFORCE, a, 4) < 0) {
                LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUF, a, 4);
            }
            m.clear();
            m.setShort(0, (short) LibC.AF_NETLINK);
            m.setInt(8, mask);
            Errno.check(LibC.bind(fd, a, LibC.SOCKADDR_NL_SIZE), "bind(AF_NETLINK, groups 0x"
                    + Integer.toHexString(mask) + ")");
            wake = Errno.check(LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK), "eventfd");
            NetlinkMonitor monitor = new NetlinkMonitor(fd, wake, subscribed, listener, threadName, threads);
            try (NetlinkRouteProgrammer nl = NetlinkRouteProgrammer.open()) {
                monitor.names.putAll(nl.linkNames());
            }
            monitor.thread.start();
            ok = true;
            return monitor;
        } finally {
            if (!ok) {
                LibC.close(fd);
                Errno.closeQuietly(wake);
            }
        }
    }

    /** The groups whose notifications reach the listener. */
    public Set<Group> groups() {
        return EnumSet.copyOf(groups.isEmpty() ? EnumSet.noneOf(Group.class) : groups);
    }

    private void run() {
        try {
            while (!closing) {
                pollFds.setInt(0, fd);
                pollFds.setShort(4, LibC.POLLIN);
                pollFds.setShort(6, (short) 0);
                pollFds.setInt(LibC.POLLFD_SIZE, wakeFd);
                pollFds.setShort(LibC.POLLFD_SIZE + 4, LibC.POLLIN);
                pollFds.setShort(LibC.POLLFD_SIZE + 6, (short) 0);
                int n = LibC.poll(Pointer.nativeValue(pollFds), 2, -1);
                if (n < 0) {
                    int errno = LibC.errno();
                    if (errno == ErrnoException.EINTR) {
                        continue;
                    }
                    throw new ErrnoException("poll(netlink monitor)", errno);
                }
                if (closing) {
                    break;
                }
                drain();
            }
        } catch (Throwable t) {
            if (!closing) {
                LOG.error("netlink monitor {} stopped", thread.getName(), t);
            }
        } finally {
            synchronized (this) {
                exited = true;
                if (closed) {
                    closeFds();
                }
            }
        }
    }

    /** Closes both descriptors once the thread no longer uses them; called with the monitor's lock held. */
    private void closeFds() {
        if (!fdsClosed) {
            fdsClosed = true;
            LibC.close(fd);
            LibC.close(wakeFd);
            pollFds.close();
        }
    }

    /** Reads every queued notification. */
    private void drain() throws ErrnoException {
        while (!closing) {
            long n = LibC.recvfrom(fd, rxAddress, rx.capacity(), 0, 0, 0);
            if (n < 0) {
                int errno = LibC.errno();
                if (errno == ErrnoException.EAGAIN) {
                    return;
                }
                if (errno == ErrnoException.EINTR) {
                    continue;
                }
                if (errno == ENOBUFS) {
                    LOG.warn("netlink monitor {}: the kernel dropped notifications (socket overflow); resyncing",
                            thread.getName());
                    deliverLost();
                    continue;
                }
                throw new ErrnoException("recvfrom(netlink monitor)", errno);
            }
            int end = (int) n;
            for (int off = 0; off + NLMSG_HDRLEN <= end; ) {
                int len = rx.getInt(off);
                if (len < NLMSG_HDRLEN || off + len > end) {
                    LOG.warn("netlink monitor {}: malformed notification skipped", thread.getName());
                    break;
                }
                int type = rx.getShort(off + 4) & 0xffff;
                try {
                    dispatch(off, len, type);
                } catch (RuntimeException e) {
                    LOG.warn("netlink monitor {}: listener failed on message type {}", thread.getName(), type, e);
                }
                off += RtMessages.align(len);
            }
        }
    }

    private void dispatch(int off, int len, int type) {
        switch (type) {
            case RTM_NEWLINK, RTM_DELLINK -> {
                Link link = RtMessages.link(rx, off, len);
                if (type == RTM_DELLINK) {
                    names.remove(link.index());
                } else if (!link.name().isEmpty()) {
                    names.put(link.index(), link.name());
                }
                if (groups.contains(Group.LINK)) {
                    if (type == RTM_DELLINK) {
                        listener.linkDeleted(link);
                    } else {
                        listener.linkChanged(link);
                    }
                }
            }
            case RTM_NEWROUTE, RTM_DELROUTE -> {
                Route route = RtMessages.route(rx, off, len, names);
                if (route != null) {
                    if (type == RTM_DELROUTE) {
                        listener.routeDeleted(route);
                    } else {
                        listener.routeAdded(route);
                    }
                }
            }
            case RTM_NEWNEIGH, RTM_DELNEIGH -> {
                Neighbour neighbour = RtMessages.neighbour(rx, off, len, names);
                if (neighbour != null) {
                    if (type == RTM_DELNEIGH) {
                        listener.neighbourDeleted(neighbour);
                    } else {
                        listener.neighbourChanged(neighbour);
                    }
                    return;
                }
                FdbEntry entry = RtMessages.fdb(rx, off, len, names);
                if (entry != null) {
                    if (type == RTM_DELNEIGH) {
                        listener.fdbDeleted(entry);
                    } else {
                        listener.fdbChanged(entry);
                    }
                }
            }
            default -> {
            }
        }
    }

    private void deliverLost() {
        try {
            listener.eventsLost();
        } catch (RuntimeException e) {
            LOG.warn("netlink monitor {}: listener failed on lost events", thread.getName(), e);
        }
    }

    /**
     * Stops the monitor: no listener method is called once this returns (unless called from a listener method, which
     * only stops further deliveries). Idempotent.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            closing = true;
            if (exited) {
                closeFds();
                return;
            }
            try (Memory one = new Memory(8)) {
                one.setLong(0, 1L);
                LibC.write(wakeFd, Pointer.nativeValue(one), 8);
            }
        }
        if (Thread.currentThread() != thread) {
            try {
                thread.join(TimeUnit.SECONDS.toMillis(10));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (thread.isAlive()) {
                LOG.warn("netlink monitor {} did not stop within 10 s", thread.getName());
            }
        }
    }

    @Override
    public String toString() {
        return "NetlinkMonitor[" + thread.getName() + " " + groups + (closing ? ", closed]" : "]");
    }
}
