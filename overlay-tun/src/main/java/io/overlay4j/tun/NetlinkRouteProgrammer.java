package io.overlay4j.tun;

import static io.overlay4j.tun.RtMessages.align;
import static io.overlay4j.tun.RtMessages.attrType;
import static io.overlay4j.tun.RtMessages.inet;
import static io.overlay4j.tun.RtMessages.next;
import static io.overlay4j.tun.RtMessages.string;
import static io.overlay4j.tun.internal.Rtnetlink.*;
import static java.util.Objects.requireNonNull;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.RouteProgrammer;
import io.overlay4j.tun.internal.DirectBuffers;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link RouteProgrammer} speaking rtnetlink ({@code AF_NETLINK}/{@code NETLINK_ROUTE}) directly: no {@code ip}
 * command is run. Open it with {@link #open()}; it programs the network namespace of the thread that opened it (open
 * it inside {@link NetworkNamespace#call} to program another one) and can then be used from any thread.
 *
 * <p>Every request carries {@code NLM_F_ACK}; a kernel refusal becomes an {@link ErrnoException} naming the request,
 * e.g. {@code RTM_NEWROUTE 100.96.0.0/16 dev flannel0 failed: ENETDOWN (100)}, with the kernel's extended-ack text
 * appended to the request when it sends one. Messages are built and parsed in two reused direct buffers; methods are
 * synchronized (one request at a time per socket).
 *
 * <p>Besides the {@link RouteProgrammer} contract it creates and wires links for test and demo topologies:
 * {@link #createBridge}, {@link #createVethPair}, {@link #setMaster}, {@link #moveToNamespace}, {@link #deleteLink};
 * and it programs what the kernel backends (flannel's {@code vxlan} and {@code host-gw}) need: vxlan devices
 * ({@link #createVxlan}, {@link #vxlanLink}, {@link #setMacAddress}), permanent neighbours
 * ({@link #replaceNeighbour}, {@link #neighbours}), FDB entries ({@link #replaceFdbEntry}, {@link #fdbEntries}),
 * {@code onlink} routes ({@link Route#onlink}) and link counters ({@link #linkStats}). {@link NetlinkMonitor} follows
 * changes to all of these.
 */
public final class NetlinkRouteProgrammer implements RouteProgrammer {
    private static final Logger LOG = LoggerFactory.getLogger(NetlinkRouteProgrammer.class);
    private static final int BUFFER_SIZE = 64 * 1024;
    private static final int RECEIVE_BUFFER_SIZE = 256 * 1024;
    private static final int DUMP_ATTEMPTS = 5;
    private static final long REPLY_TIMEOUT_SECONDS = 30;
    private static final int EHOSTUNREACH = 113;

    private final int fd;
    private final int portId;
    private final ByteBuffer tx;
    private final long txAddress;
    private final ByteBuffer rx;
    private final long rxAddress;
    private final Memory kernel = new Memory(LibC.SOCKADDR_NL_SIZE);
    private int seq;
    private boolean closed;

    /** Handles one reply message of a request or dump; {@code off} is the start of its nlmsghdr. */
    @FunctionalInterface
    private interface Handler {
        void accept(ByteBuffer b, int off, int len, int type) throws IOException;
    }

    private NetlinkRouteProgrammer(int fd, int portId) {
        this.fd = fd;
        this.portId = portId;
        this.tx = ByteBuffer.allocateDirect(BUFFER_SIZE).order(ByteOrder.nativeOrder());
        this.txAddress = DirectBuffers.address(tx);
        this.rx = ByteBuffer.allocateDirect(RECEIVE_BUFFER_SIZE).order(ByteOrder.nativeOrder());
        this.rxAddress = DirectBuffers.address(rx);
        kernel.clear();
        kernel.setShort(0, (short) LibC.AF_NETLINK);
        this.seq = (int) (System.nanoTime() & 0x3fffffff);
    }

    /**
     * Opens a rtnetlink socket in the calling thread's network namespace.
     *
     * @throws ErrnoException naming the failed call
     */
    public static NetlinkRouteProgrammer open() throws IOException {
        int fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, LibC.NETLINK_ROUTE);
        Errno.check(fd, "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)");
        boolean ok = false;
        try (Memory m = new Memory(LibC.SOCKADDR_NL_SIZE + 4 + 8)) {
            m.clear();
            m.setInt(0, 1);
            long a = Pointer.nativeValue(m);
            // Best effort: shorter errors (no echoed request) that carry the kernel's explanation.
            LibC.setsockopt(fd, LibC.SOL_NETLINK, LibC.NETLINK_CAP_ACK, a, 4);
            LibC.setsockopt(fd, LibC.SOL_NETLINK, LibC.NETLINK_EXT_ACK, a, 4);
            m.setInt(0, RECEIVE_BUFFER_SIZE);
            LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUF, a, 4);
            // The kernel answers at once; a timeout turns a lost reply into an EAGAIN error instead of a hang.
            m.setLong(0, REPLY_TIMEOUT_SECONDS);
            m.setLong(8, 0);
            Errno.check(LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVTIMEO, a, 16), "setsockopt(SO_RCVTIMEO)");
            m.clear();
            m.setShort(0, (short) LibC.AF_NETLINK);
            Errno.check(LibC.bind(fd, a, LibC.SOCKADDR_NL_SIZE), "bind(AF_NETLINK)");
            m.setInt(LibC.SOCKADDR_NL_SIZE, LibC.SOCKADDR_NL_SIZE);
            Errno.check(LibC.getsockname(fd, a, a + LibC.SOCKADDR_NL_SIZE), "getsockname(AF_NETLINK)");
            int portId = m.getInt(4);
            NetlinkRouteProgrammer p = new NetlinkRouteProgrammer(fd, portId);
            ok = true;
            return p;
        } finally {
            if (!ok) {
                LibC.close(fd);
            }
        }
    }

    // ---- RouteProgrammer -------------------------------------------------------------------------------------

    @Override
    public synchronized int linkIndex(String device) throws IOException {
        return getLink(device)[0];
    }

    @Override
    public synchronized void setLinkUp(String device) throws IOException {
        setFlags(device, IFF_UP, "up");
    }

    @Override
    public synchronized void setLinkDown(String device) throws IOException {
        setFlags(device, 0, "down");
    }

    private void setFlags(String device, int flags, String what) throws IOException {
        begin(RTM_NEWLINK, NLM_F_ACK);
        ifinfomsg(0, flags, IFF_UP);
        attr(IFLA_IFNAME, device);
        request("RTM_NEWLINK " + device + " " + what, null);
    }

    /**
     * Whether a device is administratively up ({@code IFF_UP}).
     *
     * @throws ErrnoException with ENODEV if there is no such device
     */
    public synchronized boolean isUp(String device) throws IOException {
        return (getLink(device)[2] & IFF_UP) != 0;
    }

    @Override
    public synchronized void setMtu(String device, int mtu) throws IOException {
        begin(RTM_NEWLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, device);
        attr(IFLA_MTU, mtu);
        request("RTM_NEWLINK " + device + " mtu " + mtu, null);
    }

    @Override
    public synchronized int mtu(String device) throws IOException {
        return getLink(device)[1];
    }

    /** {index, mtu, flags} of a device. */
    private int[] getLink(String device) throws IOException {
        requireNonNull(device, "device");
        begin(RTM_GETLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, device);
        int[] result = {0, 0, 0};
        request("RTM_GETLINK " + device, (b, off, len, type) -> {
            if (type != RTM_NEWLINK) {
                return;
            }
            int body = off + NLMSG_HDRLEN;
            result[0] = b.getInt(body + 4);
            result[2] = b.getInt(body + 8);
            int end = off + len;
            for (int a = body + IFINFOMSG_SIZE; a + 4 <= end; a = next(b, a)) {
                if (attrType(b, a) == IFLA_MTU) {
                    result[1] = b.getInt(a + 4);
                }
            }
        });
        if (result[0] == 0) {
            throw new ErrnoException("RTM_GETLINK " + device + " (no reply)", ErrnoException.ENODEV);
        }
        return result;
    }

    /** {@inheritDoc} Adding an address the device has is not an error (EEXIST is ignored). */
    @Override
    public synchronized void addAddress(String device, Inet4Address address, int prefixLength) throws IOException {
        int index = addressRequest(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, device, address, prefixLength);
        try {
            request(addressText("RTM_NEWADDR", device, address, prefixLength), null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.EEXIST) {
                throw e;
            }
            LOG.debug("address {}/{} already on {} (index {})", address.getHostAddress(), prefixLength, device, index);
        }
    }

    /**
     * {@inheritDoc} Deleting an address the device does not have (EADDRNOTAVAIL) is not an error.
     *
     * @throws ErrnoException with ENODEV if there is no such device
     */
    @Override
    public synchronized void deleteAddress(String device, Inet4Address address, int prefixLength)
            throws IOException {
        addressRequest(RTM_DELADDR, 0, device, address, prefixLength);
        try {
            request(addressText("RTM_DELADDR", device, address, prefixLength), null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.EADDRNOTAVAIL) {
                throw e;
            }
        }
    }

    private int addressRequest(int type, int flags, String device, Inet4Address address, int prefixLength)
            throws IOException {
        requireNonNull(address, "address");
        if (prefixLength < 0 || prefixLength > 32) {
            throw new IllegalArgumentException("IPv4 prefix length must be 0..32: " + prefixLength);
        }
        int index = getLink(device)[0];
        begin(type, NLM_F_ACK | flags);
        tx.put((byte) LibC.AF_INET).put((byte) prefixLength).put((byte) 0).put((byte) Route.SCOPE_UNIVERSE);
        tx.putInt(index);
        attr(IFA_LOCAL, address);
        attr(IFA_ADDRESS, address);
        return index;
    }

    private static String addressText(String type, String device, Inet4Address address, int prefixLength) {
        return type + " " + address.getHostAddress() + "/" + prefixLength + " dev " + device;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Each entry is {@link Ipv4Prefix#of(Inet4Address, int)} of the address, so host bits are cleared:
     * {@code 10.0.0.1/24} is listed as {@code 10.0.0.0/24} ({@code /32} addresses, as flannel uses, are exact).
     *
     * @throws ErrnoException with ENODEV if there is no such device
     */
    @Override
    public synchronized List<Ipv4Prefix> addresses(String device) throws IOException {
        int index = getLink(device)[0];
        List<Ipv4Prefix> out = new ArrayList<>();
        dump("RTM_GETADDR " + device, () -> {
            begin(RTM_GETADDR, NLM_F_DUMP);
            tx.put((byte) LibC.AF_INET).put((byte) 0).put((byte) 0).put((byte) 0).putInt(index);
        }, out::clear, (b, off, len, type) -> {
            int body = off + NLMSG_HDRLEN;
            if (type != RTM_NEWADDR || b.get(body) != LibC.AF_INET || b.getInt(body + 4) != index) {
                return;
            }
            int plen = b.get(body + 1) & 0xff;
            Inet4Address local = null;
            Inet4Address peer = null;
            for (int a = body + IFADDRMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
                if (attrType(b, a) == IFA_LOCAL) {
                    local = inet(b, a + 4);
                } else if (attrType(b, a) == IFA_ADDRESS) {
                    peer = inet(b, a + 4);
                }
            }
            Inet4Address addr = local != null ? local : peer;
            if (addr != null) {
                out.add(Ipv4Prefix.of(addr, plen));
            }
        });
        return out;
    }

    /** {@inheritDoc} Adds with {@code NLM_F_CREATE|NLM_F_EXCL}; EEXIST (a route to that destination) is ignored. */
    @Override
    public synchronized void addRoute(Route route) throws IOException {
        routeRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route);
        try {
            request("RTM_NEWROUTE " + route, null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.EEXIST) {
                throw e;
            }
            LOG.debug("route exists: {}", route);
        }
    }

    /** {@inheritDoc} Uses {@code NLM_F_CREATE|NLM_F_REPLACE}. */
    @Override
    public synchronized void replaceRoute(Route route) throws IOException {
        routeRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route);
        request("RTM_NEWROUTE(replace) " + route, null);
    }

    /**
     * {@inheritDoc} Matches destination, device, and gateway and preferred source when given, in the main table, any
     * protocol and scope. ESRCH/ENOENT (no such route) and a missing device (its routes are gone) are ignored.
     */
    @Override
    public synchronized void deleteRoute(Route route) throws IOException {
        try {
            routeRequest(RTM_DELROUTE, 0, route);
            request("RTM_DELROUTE " + route, null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.ESRCH && e.errno() != ErrnoException.ENOENT
                    && e.errno() != ErrnoException.ENODEV) {
                throw e;
            }
        }
    }

    private void routeRequest(int type, int flags, Route route) throws IOException {
        requireNonNull(route, "route");
        int oif = getLink(route.device())[0];
        boolean delete = type == RTM_DELROUTE;
        begin(type, NLM_F_ACK | flags);
        Ipv4Prefix dst = route.destination();
        tx.put((byte) LibC.AF_INET).put((byte) dst.length()).put((byte) 0).put((byte) 0);
        tx.put((byte) RT_TABLE_MAIN);
        tx.put((byte) (delete ? RTPROT_UNSPEC : route.kernel() ? RTPROT_KERNEL : RTPROT_BOOT));
        tx.put((byte) (delete ? RT_SCOPE_NOWHERE : route.scope()));
        tx.put((byte) (delete ? 0 : RTN_UNICAST));
        tx.putInt(delete ? 0 : route.flags());
        if (dst.length() > 0) {
            attr(RTA_DST, dst.network());
        }
        attr(RTA_TABLE, RT_TABLE_MAIN);
        attr(RTA_OIF, oif);
        if (route.gateway() != null) {
            attr(RTA_GATEWAY, route.gateway());
        }
        if (route.preferredSource() != null) {
            attr(RTA_PREFSRC, route.preferredSource());
        }
    }

    /**
     * {@inheritDoc} IPv4 unicast routes of table main (no cached clones), with output device names resolved, in the
     * kernel's order; {@link Route#kernel()} is {@code proto kernel}.
     */
    @Override
    public synchronized List<Route> routes() throws IOException {
        Map<Integer, String> names = linkNames();
        List<Route> out = new ArrayList<>();
        dump("RTM_GETROUTE", () -> {
            begin(RTM_GETROUTE, NLM_F_DUMP);
            tx.put((byte) LibC.AF_INET).put(new byte[RTMSG_SIZE - 1]);
        }, out::clear, (b, off, len, type) -> {
            Route r = type == RTM_NEWROUTE ? RtMessages.route(b, off, len, names) : null;
            if (r != null) {
                out.add(r);
            }
        });
        return out;
    }

    /** Interface index to name, for every link in the namespace. */
    public synchronized Map<Integer, String> linkNames() throws IOException {
        Map<Integer, String> names = new HashMap<>();
        dump("RTM_GETLINK", () -> {
            begin(RTM_GETLINK, NLM_F_DUMP);
            ifinfomsg(0, 0, 0);
        }, names::clear, (b, off, len, type) -> {
            if (type != RTM_NEWLINK) {
                return;
            }
            int body = off + NLMSG_HDRLEN;
            for (int a = body + IFINFOMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
                if (attrType(b, a) == IFLA_IFNAME) {
                    names.put(b.getInt(body + 4), string(b, a));
                }
            }
        });
        return names;
    }

    /**
     * The route the kernel would use to reach {@code destination}, like {@code ip route get}: its destination is
     * {@code destination/32}, with the gateway (if any), the output device and the preferred source address.
     *
     * @return the route, or empty if the destination is unreachable ({@code ENETUNREACH}, {@code EHOSTUNREACH})
     */
    public synchronized java.util.Optional<Route> routeGet(Inet4Address destination) throws IOException {
        requireNonNull(destination, "destination");
        Map<Integer, String> names = linkNames();
        begin(RTM_GETROUTE, NLM_F_ACK);
        tx.put((byte) LibC.AF_INET).put((byte) 32).put(new byte[RTMSG_SIZE - 2]);
        attr(RTA_DST, destination);
        Route[] found = {null};
        try {
            request("RTM_GETROUTE " + destination.getHostAddress(), (b, off, len, type) -> {
                int body = off + NLMSG_HDRLEN;
                if (type != RTM_NEWROUTE || b.get(body) != LibC.AF_INET) {
                    return;
                }
                int scope = b.get(body + 6) & 0xff;
                Inet4Address gateway = null;
                Inet4Address src = null;
                int oif = 0;
                for (int a = body + RTMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
                    switch (attrType(b, a)) {
                        case RTA_GATEWAY: gateway = inet(b, a + 4); break;
                        case RTA_PREFSRC: src = inet(b, a + 4); break;
                        case RTA_OIF: oif = b.getInt(a + 4); break;
                        default: break;
                    }
                }
                String device = names.getOrDefault(oif, oif == 0 ? "" : "if" + oif);
                found[0] = new Route(Ipv4Prefix.of(destination, 32), gateway, device, scope, src, false);
            });
        } catch (ErrnoException e) {
            if (e.errno() == ErrnoException.ENETUNREACH || e.errno() == EHOSTUNREACH) {
                return java.util.Optional.empty();
            }
            throw e;
        }
        return java.util.Optional.ofNullable(found[0]);
    }

    /** Every link of the namespace, in index order, like {@code ip -d link}. */
    public synchronized List<Link> links() throws IOException {
        List<Link> out = new ArrayList<>();
        dump("RTM_GETLINK", () -> {
            begin(RTM_GETLINK, NLM_F_DUMP);
            ifinfomsg(0, 0, 0);
        }, out::clear, (b, off, len, type) -> {
            if (type == RTM_NEWLINK) {
                out.add(RtMessages.link(b, off, len));
            }
        });
        out.sort((x, y) -> Integer.compare(x.index(), y.index()));
        return out;
    }

    /** Every IPv4 address of the namespace, host bits kept, grouped by device in index order. */
    public synchronized List<LinkAddress> ipv4Addresses() throws IOException {
        Map<Integer, String> names = linkNames();
        List<LinkAddress> out = new ArrayList<>();
        dump("RTM_GETADDR", () -> {
            begin(RTM_GETADDR, NLM_F_DUMP);
            tx.put((byte) LibC.AF_INET).put((byte) 0).put((byte) 0).put((byte) 0).putInt(0);
        }, out::clear, (b, off, len, type) -> {
            int body = off + NLMSG_HDRLEN;
            if (type != RTM_NEWADDR || b.get(body) != LibC.AF_INET) {
                return;
            }
            int plen = b.get(body + 1) & 0xff;
            int index = b.getInt(body + 4);
            Inet4Address local = null;
            Inet4Address peer = null;
            for (int a = body + IFADDRMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
                if (attrType(b, a) == IFA_LOCAL) {
                    local = inet(b, a + 4);
                } else if (attrType(b, a) == IFA_ADDRESS) {
                    peer = inet(b, a + 4);
                }
            }
            Inet4Address addr = local != null ? local : peer;
            if (addr != null) {
                out.add(new LinkAddress(names.getOrDefault(index, "if" + index), index, addr, plen));
            }
        });
        out.sort((x, y) -> Integer.compare(x.index(), y.index())); // stable: the kernel's order within a device
        return out;
    }

    // ---- single links, vxlan devices -----------------------------------------------------------------------

    /** The device named {@code name}, or empty if there is none ({@code ip -d link show <name>}). */
    public synchronized java.util.Optional<Link> link(String name) throws IOException {
        Link[] found = {null};
        if (!getLinkMessage(name, (b, off, len, type) -> found[0] = RtMessages.link(b, off, len))) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.ofNullable(found[0]);
    }

    /**
     * The settings of the vxlan device {@code name}, or empty if there is no device of that name or it is not a vxlan
     * device (see {@link #link} for its kind).
     */
    public synchronized java.util.Optional<VxlanLink> vxlanLink(String name) throws IOException {
        VxlanLink[] found = {null};
        getLinkMessage(name, (b, off, len, type) -> found[0] = RtMessages.vxlan(b, off, len));
        return java.util.Optional.ofNullable(found[0]);
    }

    /**
     * The kernel's traffic counters of a device ({@code ip -s link show <device>}).
     *
     * @throws ErrnoException with ENODEV if there is no such device
     */
    public synchronized LinkStats linkStats(String device) throws IOException {
        LinkStats[] found = {null};
        if (!getLinkMessage(device, (b, off, len, type) -> found[0] = RtMessages.stats(b, off, len))) {
            throw new ErrnoException("RTM_GETLINK " + device, ErrnoException.ENODEV);
        }
        return found[0];
    }

    /** Runs {@code handler} on the RTM_NEWLINK reply for {@code name}; false if there is no such device. */
    private boolean getLinkMessage(String name, Handler handler) throws IOException {
        requireNonNull(name, "name");
        begin(RTM_GETLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, name);
        boolean[] seen = {false};
        try {
            request("RTM_GETLINK " + name, (b, off, len, type) -> {
                if (type == RTM_NEWLINK) {
                    seen[0] = true;
                    handler.accept(b, off, len, type);
                }
            });
        } catch (ErrnoException e) {
            if (e.errno() == ErrnoException.ENODEV) {
                return false;
            }
            throw e;
        }
        return seen[0];
    }

    /**
     * Creates a vxlan device (down) with exactly the attributes flanneld's netlink library sends
     * ({@code vishvananda/netlink} {@code LinkAdd(&netlink.Vxlan{...})}): {@code IFLA_IFNAME}, {@code IFLA_MTU} when
     * the spec has one, {@code IFLA_TXQLEN} 0, {@code IFLA_ADDRESS} when the spec has a MAC, and in the link info
     * {@code IFLA_VXLAN_ID}, {@code _LINK} (if an underlay is given), {@code _LOCAL} (if given), {@code _GROUP} (if
     * given), {@code _TTL} 0 (auto), {@code _TOS} 0, {@code _LEARNING}, {@code _PROXY} 0, {@code _RSC} 0,
     * {@code _L2MISS}, {@code _L3MISS}, {@code _UDP_ZERO_CSUM6_TX/RX} 0, {@code _GBP} only when set and
     * {@code _PORT} only when above 0. Like {@code ip link add <name> type vxlan id <vni> local <ip> dev <underlay>
     * [dstport <port>] [nolearning] [gbp]}.
     *
     * @param spec what to create; its {@code index} is ignored
     * @throws ErrnoException with EEXIST if a device of that name exists
     */
    public synchronized void createVxlan(VxlanLink spec) throws IOException {
        requireNonNull(spec, "spec");
        byte[] mac = spec.mac() == null ? null : RtMessages.parseMac(spec.mac());
        begin(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, spec.name());
        if (spec.mtu() > 0) {
            attr(IFLA_MTU, spec.mtu());
        }
        // vishvananda/netlink sends the zero TxQLen of flannel's LinkAttrs literal; vxlan devices have no qdisc.
        attr(IFLA_TXQLEN, 0);
        if (mac != null) {
            attr(IFLA_ADDRESS, mac);
        }
        int info = nestStart(IFLA_LINKINFO);
        attrNoNul(IFLA_INFO_KIND, "vxlan");
        int data = nestStart(IFLA_INFO_DATA);
        attr(IFLA_VXLAN_ID, spec.vni());
        if (spec.underlayIndex() > 0) {
            attr(IFLA_VXLAN_LINK, spec.underlayIndex());
        }
        if (spec.local() != null) {
            attr(IFLA_VXLAN_LOCAL, spec.local());
        }
        if (spec.group() != null) {
            attr(IFLA_VXLAN_GROUP, spec.group());
        }
        attrU8(IFLA_VXLAN_TTL, 0);
        attrU8(IFLA_VXLAN_TOS, 0);
        attrU8(IFLA_VXLAN_LEARNING, spec.learning() ? 1 : 0);
        attrU8(IFLA_VXLAN_PROXY, 0);
        attrU8(IFLA_VXLAN_RSC, 0);
        attrU8(IFLA_VXLAN_L2MISS, spec.l2miss() ? 1 : 0);
        attrU8(IFLA_VXLAN_L3MISS, spec.l3miss() ? 1 : 0);
        attrU8(IFLA_VXLAN_UDP_ZERO_CSUM6_TX, 0);
        attrU8(IFLA_VXLAN_UDP_ZERO_CSUM6_RX, 0);
        if (spec.gbp()) {
            tx.putShort((short) 4).putShort((short) IFLA_VXLAN_GBP);
        }
        if (spec.port() > 0) {
            tx.putShort((short) 6).putShort((short) IFLA_VXLAN_PORT).put((byte) (spec.port() >> 8))
                    .put((byte) spec.port());
            pad();
        }
        nestEnd(data);
        nestEnd(info);
        request("RTM_NEWLINK " + spec.name() + " type vxlan id " + spec.vni(), null);
    }

    /**
     * Sets a device's hardware address, like {@code ip link set <device> address <mac>}.
     *
     * @param mac lower-case or upper-case colon form, e.g. {@code 0a:58:64:60:01:01}
     */
    public synchronized void setMacAddress(String device, String mac) throws IOException {
        byte[] bytes = RtMessages.parseMac(mac);
        begin(RTM_NEWLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, device);
        attr(IFLA_ADDRESS, bytes);
        request("RTM_NEWLINK " + device + " address " + mac, null);
    }

    // ---- neighbours and FDB entries ------------------------------------------------------------------------

    /**
     * Adds or replaces a permanent IPv4 neighbour, like {@code ip neigh replace <address> lladdr <mac> dev <device>
     * nud permanent}: {@code RTM_NEWNEIGH} with {@code NLM_F_CREATE|NLM_F_REPLACE}, family AF_INET, state
     * {@code NUD_PERMANENT}, type {@code RTN_UNICAST}, {@code NDA_DST} and {@code NDA_LLADDR} (flannel's
     * {@code AddARP}).
     */
    public synchronized void replaceNeighbour(String device, Inet4Address address, String mac) throws IOException {
        requireNonNull(address, "address");
        byte[] bytes = RtMessages.parseMac(mac);
        int index = getLink(device)[0];
        begin(RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        ndmsg(LibC.AF_INET, index, NUD_PERMANENT, 0, RTN_UNICAST);
        attr(NDA_DST, address);
        attr(NDA_LLADDR, bytes);
        request("RTM_NEWNEIGH " + address.getHostAddress() + " lladdr " + mac + " dev " + device, null);
    }

    /**
     * Deletes an IPv4 neighbour, like {@code ip neigh del <address> dev <device>} (flannel's {@code DelARP}). A missing
     * entry or device is not an error.
     */
    public synchronized void deleteNeighbour(String device, Inet4Address address) throws IOException {
        requireNonNull(address, "address");
        try {
            int index = getLink(device)[0];
            begin(RTM_DELNEIGH, NLM_F_ACK);
            ndmsg(LibC.AF_INET, index, NUD_PERMANENT, 0, RTN_UNICAST);
            attr(NDA_DST, address);
            request("RTM_DELNEIGH " + address.getHostAddress() + " dev " + device, null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.ENOENT && e.errno() != ErrnoException.ENODEV) {
                throw e;
            }
        }
    }

    /**
     * The IPv4 neighbours of a device ({@code ip neigh show dev <device>}), or of every device if {@code device} is
     * {@code null}, in the kernel's order.
     */
    public synchronized List<Neighbour> neighbours(String device) throws IOException {
        Map<Integer, String> names = linkNames();
        int index = device == null ? 0 : getLink(device)[0];
        List<Neighbour> out = new ArrayList<>();
        dump("RTM_GETNEIGH", () -> {
            begin(RTM_GETNEIGH, NLM_F_DUMP);
            ndmsg(LibC.AF_INET, 0, 0, 0, 0);
        }, out::clear, (b, off, len, type) -> {
            Neighbour n = type == RTM_NEWNEIGH ? RtMessages.neighbour(b, off, len, names) : null;
            if (n != null && (index == 0 || n.index() == index)) {
                out.add(n);
            }
        });
        return out;
    }

    /**
     * Adds or replaces a permanent FDB entry in a device's own table, like {@code bridge fdb replace <mac> dev
     * <device> dst <destination> self permanent}: {@code RTM_NEWNEIGH} with {@code NLM_F_CREATE|NLM_F_REPLACE},
     * family AF_BRIDGE, state {@code NUD_PERMANENT}, flags {@code NTF_SELF}, {@code NDA_DST} and {@code NDA_LLADDR}
     * (flannel's {@code AddFDB}). On a vxlan device this says: frames for {@code mac} go to the VTEP
     * {@code destination}.
     */
    public synchronized void replaceFdbEntry(String device, String mac, Inet4Address destination) throws IOException {
        requireNonNull(destination, "destination");
        byte[] bytes = RtMessages.parseMac(mac);
        int index = getLink(device)[0];
        begin(RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        ndmsg(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0);
        attr(NDA_DST, destination);
        attr(NDA_LLADDR, bytes);
        request("RTM_NEWNEIGH(fdb) " + mac + " dev " + device + " dst " + destination.getHostAddress(), null);
    }

    /**
     * Deletes an FDB entry from a device's own table, like {@code bridge fdb del <mac> dev <device> dst <destination>
     * self} (flannel's {@code DelFDB}). A missing entry or device is not an error.
     */
    public synchronized void deleteFdbEntry(String device, String mac, Inet4Address destination) throws IOException {
        requireNonNull(destination, "destination");
        byte[] bytes = RtMessages.parseMac(mac);
        try {
            int index = getLink(device)[0];
            begin(RTM_DELNEIGH, NLM_F_ACK);
            ndmsg(AF_BRIDGE, index, 0, NTF_SELF, 0);
            attr(NDA_DST, destination);
            attr(NDA_LLADDR, bytes);
            request("RTM_DELNEIGH(fdb) " + mac + " dev " + device + " dst " + destination.getHostAddress(), null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.ENOENT && e.errno() != ErrnoException.ENODEV) {
                throw e;
            }
        }
    }

    /**
     * The FDB entries of a device ({@code bridge fdb show dev <device>}), or of every device if {@code device} is
     * {@code null}, in the kernel's order.
     */
    public synchronized List<FdbEntry> fdbEntries(String device) throws IOException {
        Map<Integer, String> names = linkNames();
        int index = device == null ? 0 : getLink(device)[0];
        List<FdbEntry> out = new ArrayList<>();
        dump("RTM_GETNEIGH(fdb)", () -> {
            begin(RTM_GETNEIGH, NLM_F_DUMP);
            ndmsg(AF_BRIDGE, 0, 0, 0, 0);
        }, out::clear, (b, off, len, type) -> {
            FdbEntry e = type == RTM_NEWNEIGH ? RtMessages.fdb(b, off, len, names) : null;
            if (e != null && (index == 0 || e.index() == index)) {
                out.add(e);
            }
        });
        return out;
    }

    // ---- topology extras -------------------------------------------------------------------------------------

    /**
     * Creates a bridge device (down), like {@code ip link add <name> type bridge}.
     *
     * @throws ErrnoException with EEXIST if a device of that name exists
     */
    public synchronized void createBridge(String name) throws IOException {
        begin(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, name);
        int info = nestStart(IFLA_LINKINFO);
        attr(IFLA_INFO_KIND, "bridge");
        nestEnd(info);
        request("RTM_NEWLINK " + name + " type bridge", null);
    }

    /**
     * Creates a veth pair (both ends down), like {@code ip link add <name> type veth peer name <peerName>}.
     *
     * @throws ErrnoException with EEXIST if a device of either name exists
     */
    public synchronized void createVethPair(String name, String peerName) throws IOException {
        requireNonNull(peerName, "peerName");
        begin(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, name);
        int info = nestStart(IFLA_LINKINFO);
        attr(IFLA_INFO_KIND, "veth");
        int data = nestStart(IFLA_INFO_DATA);
        int peer = nestStart(VETH_INFO_PEER);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, peerName);
        nestEnd(peer);
        nestEnd(data);
        nestEnd(info);
        request("RTM_NEWLINK " + name + " type veth peer " + peerName, null);
    }

    /** Enslaves {@code device} to {@code bridge}, like {@code ip link set <device> master <bridge>}. */
    public synchronized void setMaster(String device, String bridge) throws IOException {
        int master = getLink(bridge)[0];
        begin(RTM_NEWLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, device);
        attr(IFLA_MASTER, master);
        request("RTM_NEWLINK " + device + " master " + bridge, null);
    }

    /**
     * Moves {@code device} into {@code namespace}, like {@code ip link set <device> netns <name>}. The device leaves
     * this programmer's namespace (and goes down, losing its addresses).
     */
    public synchronized void moveToNamespace(String device, NetworkNamespace namespace) throws IOException {
        requireNonNull(namespace, "namespace");
        int nsFd = LibC.open(namespace.path().toString(), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        Errno.check(nsFd, "open(" + namespace.path() + ")");
        try {
            begin(RTM_NEWLINK, NLM_F_ACK);
            ifinfomsg(0, 0, 0);
            attr(IFLA_IFNAME, device);
            attr(IFLA_NET_NS_FD, nsFd);
            request("RTM_NEWLINK " + device + " netns " + namespace.name(), null);
        } finally {
            LibC.close(nsFd);
        }
    }

    /**
     * Renames a device, like {@code ip link set <device> name <newName>}; the device must be down.
     *
     * @throws ErrnoException with ENODEV if there is no such device, EEXIST if the new name is taken
     */
    public synchronized void renameLink(String device, String newName) throws IOException {
        requireNonNull(newName, "newName");
        int index = getLink(device)[0];
        begin(RTM_NEWLINK, NLM_F_ACK);
        ifinfomsg(index, 0, 0);
        attr(IFLA_IFNAME, newName);
        request("RTM_NEWLINK " + device + " name " + newName, null);
    }

    /** Deletes a device (for a veth, both ends), like {@code ip link del}; a missing device is not an error. */
    public synchronized void deleteLink(String name) throws IOException {
        begin(RTM_DELLINK, NLM_F_ACK);
        ifinfomsg(0, 0, 0);
        attr(IFLA_IFNAME, name);
        try {
            request("RTM_DELLINK " + name, null);
        } catch (ErrnoException e) {
            if (e.errno() != ErrnoException.ENODEV) {
                throw e;
            }
        }
    }

    /** Closes the netlink socket. Idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            LibC.close(fd);
            kernel.close();
        }
    }

    // ---- message building ------------------------------------------------------------------------------------

    private void begin(int type, int flags) throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
        tx.clear();
        tx.putInt(0).putShort((short) type).putShort((short) (flags | NLM_F_REQUEST)).putInt(++seq).putInt(0);
    }

    private void ifinfomsg(int index, int flags, int change) {
        tx.put((byte) LibC.AF_UNSPEC).put((byte) 0).putShort((short) 0).putInt(index).putInt(flags).putInt(change);
    }

    private void attr(int type, int value) {
        tx.putShort((short) 8).putShort((short) type).putInt(value);
    }

    private void attr(int type, Inet4Address address) {
        tx.putShort((short) 8).putShort((short) type).put(address.getAddress());
    }

    private void attr(int type, byte[] value) {
        tx.putShort((short) (4 + value.length)).putShort((short) type).put(value);
        pad();
    }

    private void attrU8(int type, int value) {
        tx.putShort((short) 5).putShort((short) type).put((byte) value);
        pad();
    }

    /** A string attribute without a NUL terminator, as vishvananda/netlink sends {@code IFLA_INFO_KIND}. */
    private void attrNoNul(int type, String value) {
        byte[] bytes = value.getBytes(StandardCharsets.US_ASCII);
        tx.putShort((short) (4 + bytes.length)).putShort((short) type).put(bytes);
        pad();
    }

    private void ndmsg(int family, int index, int state, int flags, int type) {
        tx.put((byte) family).put((byte) 0).putShort((short) 0).putInt(index).putShort((short) state)
                .put((byte) flags).put((byte) type);
    }

    private void attr(int type, String value) {
        requireNonNull(value, "name");
        byte[] bytes = value.getBytes(StandardCharsets.US_ASCII);
        tx.putShort((short) (4 + bytes.length + 1)).putShort((short) type).put(bytes).put((byte) 0);
        pad();
    }

    private int nestStart(int type) {
        int start = tx.position();
        tx.putShort((short) 0).putShort((short) (type | NLA_F_NESTED));
        return start;
    }

    private void nestEnd(int start) {
        tx.putShort(start, (short) (tx.position() - start));
    }

    private void pad() {
        while ((tx.position() & 3) != 0) {
            tx.put((byte) 0);
        }
    }

    // ---- transport -------------------------------------------------------------------------------------------

    /** Sends the message in {@code tx} and processes replies until the acknowledgement. */
    private void request(String what, Handler handler) throws IOException {
        send(what);
        receive(what, handler, false);
    }

    /** Runs a dump, retrying if the kernel flags it inconsistent ({@code NLM_F_DUMP_INTR}). */
    private void dump(String what, DumpRequest build, Runnable reset, Handler handler) throws IOException {
        for (int attempt = 1; ; attempt++) {
            reset.run();
            build.build();
            send(what);
            if (receive(what, handler, true)) {
                return;
            }
            if (attempt == DUMP_ATTEMPTS) {
                LOG.warn("{} dump still inconsistent after {} attempts, using the last one", what, attempt);
                return;
            }
            LOG.debug("{} dump interrupted by a concurrent change, retrying", what);
        }
    }

    @FunctionalInterface
    private interface DumpRequest {
        void build() throws IOException;
    }

    private void send(String what) throws IOException {
        int len = tx.position();
        tx.putInt(0, len);
        while (true) {
            long n = LibC.sendto(fd, txAddress, len, 0, Pointer.nativeValue(kernel), LibC.SOCKADDR_NL_SIZE);
            if (n >= 0) {
                return;
            }
            int errno = LibC.errno();
            if (errno != ErrnoException.EINTR) {
                throw new ErrnoException("sendto(NETLINK_ROUTE) " + what, errno);
            }
        }
    }

    /** @return false if a dump was flagged inconsistent */
    private boolean receive(String what, Handler handler, boolean dump) throws IOException {
        int expected = seq;
        boolean consistent = true;
        while (true) {
            long n = LibC.recvfrom(fd, rxAddress, rx.capacity(), LibC.MSG_TRUNC, 0, 0);
            if (n < 0) {
                int errno = LibC.errno();
                if (errno == ErrnoException.EINTR) {
                    continue;
                }
                throw new ErrnoException("recvfrom(NETLINK_ROUTE) " + what, errno);
            }
            if (n > rx.capacity()) {
                throw new IOException("netlink reply to " + what + " truncated: " + n + " bytes");
            }
            int end = (int) n;
            for (int off = 0; off + NLMSG_HDRLEN <= end; ) {
                int len = rx.getInt(off);
                int type = rx.getShort(off + 4) & 0xffff;
                int flags = rx.getShort(off + 6) & 0xffff;
                int mseq = rx.getInt(off + 8);
                int mpid = rx.getInt(off + 12);
                if (len < NLMSG_HDRLEN || off + len > end) {
                    throw new IOException("malformed netlink reply to " + what);
                }
                if (mseq != expected || mpid != portId) {
                    LOG.debug("skipping stale netlink message seq {} (expected {}) pid {}", mseq, expected, mpid);
                } else if (type == NLMSG_ERROR) {
                    int error = rx.getInt(off + NLMSG_HDRLEN);
                    if (error != 0) {
                        throw new ErrnoException(what + extAck(off, len, flags), -error);
                    }
                    if (!dump) {
                        return true;
                    }
                } else if (type == NLMSG_DONE) {
                    if (len >= NLMSG_HDRLEN + 4 && rx.getInt(off + NLMSG_HDRLEN) < 0) {
                        throw new ErrnoException(what + " (dump)", -rx.getInt(off + NLMSG_HDRLEN));
                    }
                    return consistent;
                } else {
                    if ((flags & NLM_F_DUMP_INTR) != 0) {
                        consistent = false;
                    }
                    if (handler != null) {
                        handler.accept(rx, off, len, type);
                    }
                }
                off += align(len);
            }
        }
    }

    /** The extended-ack message of an NLMSG_ERROR, as " [kernel: text]", or "". */
    private String extAck(int off, int len, int flags) {
        if ((flags & NLM_F_ACK_TLVS) == 0) {
            return "";
        }
        int requestLen = (flags & NLM_F_CAPPED) != 0 ? NLMSG_HDRLEN : rx.getInt(off + NLMSG_HDRLEN + 4);
        int start = off + NLMSG_HDRLEN + 4 + align(requestLen);
        for (int a = start; a + 4 <= off + len; a = next(rx, a)) {
            if (attrType(rx, a) == NLMSGERR_ATTR_MSG) {
                return " [kernel: " + string(rx, a) + "]";
            }
        }
        return "";
    }

    @Override
    public String toString() {
        return "NetlinkRouteProgrammer[port " + portId + (closed ? ", closed]" : "]");
    }
}
