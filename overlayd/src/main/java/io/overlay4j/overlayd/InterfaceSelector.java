package io.overlay4j.overlayd;

import com.google.common.net.InetAddresses;
import io.overlay4j.Route;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.LinkAddress;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import java.io.IOException;
import java.net.Inet4Address;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Picks the underlay interface and the addresses as flanneld does ({@code pkg/ipmatch/match.go}, {@code pkg/ip}),
 * from what rtnetlink reports in the calling thread's network namespace:
 * <ol>
 *   <li>no {@code -iface}, {@code -iface-regex} or {@code -iface-can-reach}: the interface holding {@code -public-ip}
 *       if given, else the interface of the (first) default route, with its first usable IPv4 address;</li>
 *   <li>else each {@code -iface} in order (a name, or an IP: the interface holding it, and that IP), then each
 *       {@code -iface-regex} (matched against every interface's addresses in index order, then against the names),
 *       then {@code -iface-can-reach} (the route to it: its device and preferred source); the first match wins.</li>
 * </ol>
 * A usable address is global or link-local unicast, global ones first. The published address is {@code -public-ip},
 * else the interface address.
 */
final class InterfaceSelector {
    private static final Logger log = LoggerFactory.getLogger(InterfaceSelector.class);

    /** What the kernel reports; {@link NetlinkRouteProgrammer} in production. */
    interface Kernel {
        List<Link> links() throws IOException;

        List<LinkAddress> ipv4Addresses() throws IOException;

        List<Route> routes() throws IOException;

        Optional<Route> routeGet(Inet4Address destination) throws IOException;
    }

    /**
     * The chosen interface.
     *
     * @param name      its name
     * @param mtu       its MTU
     * @param address   the interface address (the backend binds here)
     * @param publicIp  the address published in the lease
     */
    record Selected(String name, int mtu, Inet4Address address, Inet4Address publicIp) {
        @Override
        public String toString() {
            return name + " (address " + address.getHostAddress() + ", public " + publicIp.getHostAddress() + ", mtu "
                    + mtu + ")";
        }
    }

    /** No interface matched: the message says what was tried. */
    static final class NoInterfaceException extends Exception {
        private static final long serialVersionUID = 1L;

        NoInterfaceException(String message) {
            super(message);
        }
    }

    private final Kernel kernel;

    InterfaceSelector(Kernel kernel) {
        this.kernel = kernel;
    }

    /** A selector reading the calling thread's namespace through {@code routes}. */
    static InterfaceSelector of(NetlinkRouteProgrammer routes) {
        return new InterfaceSelector(new Kernel() {
            @Override
            public List<Link> links() throws IOException {
                return routes.links();
            }

            @Override
            public List<LinkAddress> ipv4Addresses() throws IOException {
                return routes.ipv4Addresses();
            }

            @Override
            public List<Route> routes() throws IOException {
                return routes.routes();
            }

            @Override
            public Optional<Route> routeGet(Inet4Address destination) throws IOException {
                return routes.routeGet(destination);
            }
        });
    }

    /** Selects per the options' {@code iface*} and {@code public-ip}. */
    Selected select(Options o) throws IOException, NoInterfaceException {
        return select(o.ifaces, o.ifaceRegexes, o.ifaceCanReach, o.publicIp);
    }

    Selected select(List<String> ifaces, List<Pattern> regexes, Inet4Address canReach, Inet4Address publicIp)
            throws IOException, NoInterfaceException {
        Candidate found = null;
        if (ifaces.isEmpty() && regexes.isEmpty() && canReach == null) {
            if (publicIp != null) {
                found = byAddress(publicIp);
                if (found == null) {
                    throw new NoInterfaceException("no interface holds -public-ip " + publicIp.getHostAddress()
                            + " (behind NAT, name the interface with -iface as well)");
                }
            } else {
                found = defaultRoute();
            }
        } else {
            List<String> tried = new ArrayList<>();
            for (String want : ifaces) {
                try {
                    found = InetAddresses.isInetAddress(want) ? byAddressOrFail(want) : byName(want);
                    break;
                } catch (NoInterfaceException e) {
                    log.info("could not find a valid interface matching {}: {}", want, e.getMessage());
                    tried.add("-iface " + want);
                }
            }
            for (int i = 0; found == null && i < regexes.size(); i++) {
                try {
                    found = byRegex(regexes.get(i));
                } catch (NoInterfaceException e) {
                    log.info("could not find a valid interface matching {}: {}", regexes.get(i), e.getMessage());
                    tried.add("-iface-regex " + regexes.get(i));
                }
            }
            if (found == null && canReach != null) {
                try {
                    found = byRoute(canReach);
                } catch (NoInterfaceException e) {
                    log.info("could not find a valid interface reaching {}: {}", canReach.getHostAddress(),
                            e.getMessage());
                    tried.add("-iface-can-reach " + canReach.getHostAddress());
                }
            }
            if (found == null) {
                throw new NoInterfaceException("no interface matches " + String.join(", ", tried)
                        + "; interfaces: " + describe());
            }
        }
        if (found.link.mtu() == 0) {
            throw new NoInterfaceException("cannot determine the MTU of " + found.link.name());
        }
        Selected s = new Selected(found.link.name(), found.link.mtu(), found.address,
                publicIp != null ? publicIp : found.address);
        log.info("using interface {} with address {}; publishing {}", s.name(), s.address().getHostAddress(),
                s.publicIp().getHostAddress());
        return s;
    }

    private record Candidate(Link link, Inet4Address address) {
    }

    private Candidate defaultRoute() throws IOException, NoInterfaceException {
        for (Route r : kernel.routes()) {
            if (r.destination().length() == 0) {
                if (r.device().isEmpty()) {
                    throw new NoInterfaceException("found a default route but could not determine its interface");
                }
                Link link = link(r.device());
                if (link == null) {
                    throw new NoInterfaceException("the default route's interface " + r.device() + " is gone");
                }
                return new Candidate(link, firstUsable(link));
            }
        }
        throw new NoInterfaceException("there is no default route; name the interface with -iface, -iface-regex or "
                + "-iface-can-reach");
    }

    private Candidate byName(String name) throws IOException, NoInterfaceException {
        Link link = link(name);
        if (link == null) {
            throw new NoInterfaceException("no interface named " + name);
        }
        return new Candidate(link, firstUsable(link));
    }

    private Candidate byAddressOrFail(String ip) throws IOException, NoInterfaceException {
        java.net.InetAddress a = InetAddresses.forString(ip);
        if (!(a instanceof Inet4Address)) {
            throw new NoInterfaceException(ip + " is not an IPv4 address (overlayd runs IPv4 networks)");
        }
        Candidate c = byAddress((Inet4Address) a);
        if (c == null) {
            throw new NoInterfaceException("no interface with address " + ip);
        }
        return c;
    }

    private Candidate byAddress(Inet4Address ip) throws IOException {
        for (LinkAddress a : kernel.ipv4Addresses()) {
            if (a.address().equals(ip)) {
                Link link = link(a.device());
                if (link != null) {
                    return new Candidate(link, ip);
                }
            }
        }
        return null;
    }

    private Candidate byRegex(Pattern regex) throws IOException, NoInterfaceException {
        List<Link> links = kernel.links();
        List<LinkAddress> addresses = kernel.ipv4Addresses();
        for (Link link : links) {
            for (Inet4Address a : usable(link, addresses)) {
                if (regex.matcher(a.getHostAddress()).find()) {
                    return new Candidate(link, a);
                }
            }
        }
        for (Link link : links) {
            if (regex.matcher(link.name()).find()) {
                return new Candidate(link, firstUsable(link));
            }
        }
        throw new NoInterfaceException("the pattern matches no interface address or name");
    }

    private Candidate byRoute(Inet4Address destination) throws IOException, NoInterfaceException {
        Route r = kernel.routeGet(destination).orElseThrow(() -> new NoInterfaceException("no route to "
                + destination.getHostAddress()));
        Link link = link(r.device());
        if (link == null) {
            throw new NoInterfaceException("the route to " + destination.getHostAddress() + " has no interface");
        }
        return new Candidate(link, r.preferredSource() != null ? r.preferredSource() : firstUsable(link));
    }

    private Link link(String name) throws IOException {
        for (Link l : kernel.links()) {
            if (l.name().equals(name)) {
                return l;
            }
        }
        return null;
    }

    private Inet4Address firstUsable(Link link) throws IOException, NoInterfaceException {
        List<Inet4Address> usable = usable(link, kernel.ipv4Addresses());
        if (usable.isEmpty()) {
            throw new NoInterfaceException("interface " + link.name() + " has no usable IPv4 address");
        }
        return usable.get(0);
    }

    /** Global unicast addresses, then link-local ones (flanneld's {@code GetInterfaceIP4Addrs} order). */
    private static List<Inet4Address> usable(Link link, List<LinkAddress> addresses) {
        List<Inet4Address> global = new ArrayList<>();
        List<Inet4Address> linkLocal = new ArrayList<>();
        for (LinkAddress a : addresses) {
            if (a.index() != link.index()) {
                continue;
            }
            Inet4Address ip = a.address();
            if (ip.isLinkLocalAddress()) {
                linkLocal.add(ip);
            } else if (!ip.isLoopbackAddress() && !ip.isMulticastAddress() && !ip.isAnyLocalAddress()
                    && !ip.getHostAddress().equals("255.255.255.255")) {
                global.add(ip);
            }
        }
        global.addAll(linkLocal);
        return global;
    }

    private String describe() throws IOException {
        List<String> out = new ArrayList<>();
        List<LinkAddress> addresses = kernel.ipv4Addresses();
        for (Link l : kernel.links()) {
            out.add(l.name() + ":" + usable(l, addresses).stream().map(Inet4Address::getHostAddress).toList());
        }
        return String.join(", ", out);
    }
}
