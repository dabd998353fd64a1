package io.overlay4j.testing;

import static java.util.Objects.requireNonNull;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.RouteProgrammer;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@link RouteProgrammer} without a kernel, for unit tests of code that programs routes. The test
 * {@link #addDevice adds} devices; the programmer then follows the Linux kernel's rules for what
 * {@link AbstractRouteProgrammerContractTest} covers (it runs against this class and against the rtnetlink programmer
 * of overlay-tun, so both behave alike):
 * <ul>
 *   <li>a device that does not exist is {@code ENODEV} (deleting a route through it is not an error);</li>
 *   <li>devices start down with MTU 1500; addresses are listed as {@link Ipv4Prefix#of(Inet4Address, int)};</li>
 *   <li>an address shorter than /32 on a device that is up makes a connected route ({@code proto kernel scope link
 *       src <address>}); setting the device down removes every route through it, up restores only the connected
 *       ones;</li>
 *   <li>a route through a device that is down is {@code ENETDOWN}, a gateway outside the device's link-scope routes
 *       is {@code ENETUNREACH}, a preferred source that is no local address is {@code EINVAL};</li>
 *   <li>{@link #addRoute} keeps an existing route to the same destination, {@link #replaceRoute} replaces it,
 *       {@link #deleteRoute} matches destination and device, and gateway and preferred source when given;</li>
 *   <li>after {@link #close()} every call is a {@link ClosedChannelException}.</li>
 * </ul>
 * Thread-safe.
 */
public final class InMemoryRouteProgrammer implements RouteProgrammer {
    /** The MTU of a device added without one. */
    public static final int DEFAULT_MTU = 1500;

    private final Map<String, Device> devices = new LinkedHashMap<>();
    private final List<Route> routes = new ArrayList<>();
    private int nextIndex = 2;
    private boolean closed;

    private static final class Device {
        final int index;
        int mtu;
        boolean up;
        final List<Ipv4Prefix> addresses = new ArrayList<>();
        /** The addresses as given, host bits included (a connected route's preferred source). */
        final List<Inet4Address> hosts = new ArrayList<>();

        Device(int index, int mtu) {
            this.index = index;
            this.mtu = mtu;
        }
    }

    /** Adds a device that is down, has MTU {@value #DEFAULT_MTU} and no address, like {@code ip link add}. */
    public InMemoryRouteProgrammer addDevice(String name) {
        return addDevice(name, DEFAULT_MTU);
    }

    /**
     * Adds a device that is down, has this MTU and no address.
     *
     * @throws IllegalArgumentException if a device of that name exists, or the name is not 1..15 characters
     */
    public synchronized InMemoryRouteProgrammer addDevice(String name, int mtu) {
        requireNonNull(name, "name");
        if (name.isEmpty() || name.length() > 15) {
            throw new IllegalArgumentException("device name must be 1..15 characters: " + name);
        }
        if (devices.containsKey(name)) {
            throw new IllegalArgumentException("device exists: " + name);
        }
        devices.put(name, new Device(nextIndex++, mtu));
        return this;
    }

    /**
     * Removes a device with its addresses and routes, as the kernel does when a device disappears (a TUN device is
     * closed, a veth peer is deleted). Nothing happens if there is no such device.
     */
    public synchronized void removeDevice(String name) {
        if (devices.remove(name) != null) {
            routes.removeIf(r -> r.device().equals(name));
        }
    }

    /** Whether the device is administratively up. */
    public synchronized boolean isUp(String device) throws IOException {
        return device("link", device).up;
    }

    @Override
    public synchronized int linkIndex(String device) throws IOException {
        return device("RTM_GETLINK", device).index;
    }

    @Override
    public synchronized void setLinkUp(String device) throws IOException {
        Device d = device("RTM_NEWLINK " + device + " up", device);
        if (d.up) {
            return;
        }
        d.up = true;
        for (int i = 0; i < d.addresses.size(); i++) {
            Ipv4Prefix prefix = d.addresses.get(i);
            if (prefix.length() < 32 && routes.stream().noneMatch(r -> r.destination().equals(prefix))) {
                routes.add(connectedRoute(device, prefix, d.hosts.get(i)));
            }
        }
    }

    @Override
    public synchronized void setLinkDown(String device) throws IOException {
        Device d = device("RTM_NEWLINK " + device + " down", device);
        d.up = false;
        routes.removeIf(r -> r.device().equals(device));
    }

    @Override
    public synchronized void setMtu(String device, int mtu) throws IOException {
        Device d = device("RTM_NEWLINK " + device + " mtu " + mtu, device);
        if (mtu < 68 || mtu > 65535) {
            throw new ErrnoException("RTM_NEWLINK " + device + " mtu " + mtu, ErrnoException.EINVAL);
        }
        d.mtu = mtu;
    }

    @Override
    public synchronized int mtu(String device) throws IOException {
        return device("RTM_GETLINK", device).mtu;
    }

    @Override
    public synchronized void addAddress(String device, Inet4Address address, int prefixLength) throws IOException {
        requireNonNull(address, "address");
        checkLength(prefixLength);
        Device d = device(addressText("RTM_NEWADDR", device, address, prefixLength), device);
        Ipv4Prefix prefix = Ipv4Prefix.of(address, prefixLength);
        for (int i = 0; i < d.hosts.size(); i++) {
            if (d.hosts.get(i).equals(address) && d.addresses.get(i).length() == prefixLength) {
                return;
            }
        }
        d.addresses.add(prefix);
        d.hosts.add(address);
        if (d.up && prefixLength < 32) {
            Route connected = connectedRoute(device, prefix, address);
            if (routes.stream().noneMatch(r -> r.destination().equals(prefix))) {
                routes.add(connected);
            }
        }
    }

    @Override
    public synchronized void deleteAddress(String device, Inet4Address address, int prefixLength)
            throws IOException {
        requireNonNull(address, "address");
        checkLength(prefixLength);
        Device d = device(addressText("RTM_DELADDR", device, address, prefixLength), device);
        for (int i = 0; i < d.hosts.size(); i++) {
            if (d.hosts.get(i).equals(address) && d.addresses.get(i).length() == prefixLength) {
                Ipv4Prefix prefix = d.addresses.remove(i);
                d.hosts.remove(i);
                routes.remove(connectedRoute(device, prefix, address));
                return;
            }
        }
    }

    @Override
    public synchronized List<Ipv4Prefix> addresses(String device) throws IOException {
        return List.copyOf(device("RTM_GETADDR " + device, device).addresses);
    }

    @Override
    public synchronized void addRoute(Route route) throws IOException {
        check("RTM_NEWROUTE", route);
        if (routes.stream().noneMatch(r -> r.destination().equals(route.destination()))) {
            routes.add(route);
        }
    }

    @Override
    public synchronized void replaceRoute(Route route) throws IOException {
        check("RTM_NEWROUTE(replace)", route);
        for (int i = 0; i < routes.size(); i++) {
            if (routes.get(i).destination().equals(route.destination())) {
                routes.set(i, route);
                return;
            }
        }
        routes.add(route);
    }

    @Override
    public synchronized void deleteRoute(Route route) throws IOException {
        requireNonNull(route, "route");
        ensureOpen();
        routes.removeIf(r -> r.destination().equals(route.destination()) && r.device().equals(route.device())
                && (route.gateway() == null || route.gateway().equals(r.gateway()))
                && (route.preferredSource() == null || route.preferredSource().equals(r.preferredSource())));
    }

    @Override
    public synchronized List<Route> routes() throws IOException {
        ensureOpen();
        return List.copyOf(routes);
    }

    /** Closes the programmer; later calls throw {@link ClosedChannelException}. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
    }

    @Override
    public synchronized String toString() {
        return "InMemoryRouteProgrammer" + devices.keySet() + (closed ? " closed" : "");
    }

    private void check(String request, Route route) throws IOException {
        requireNonNull(route, "route");
        String what = request + " " + route;
        Device d = device(what, route.device());
        if (!d.up) {
            throw new ErrnoException(what + " [device for nexthop is not up]", ErrnoException.ENETDOWN);
        }
        Inet4Address gateway = route.gateway();
        if (gateway != null && routes.stream().noneMatch(r -> r.device().equals(route.device())
                && r.scope() == Route.SCOPE_LINK && r.destination().contains(gateway))) {
            throw new ErrnoException(what + " [nexthop has invalid gateway]", ErrnoException.ENETUNREACH);
        }
        Inet4Address source = route.preferredSource();
        if (source != null && devices.values().stream().noneMatch(x -> x.hosts.contains(source))) {
            throw new ErrnoException(what + " [invalid prefsrc address]", ErrnoException.EINVAL);
        }
    }

    private Device device(String request, String name) throws IOException {
        requireNonNull(name, "device");
        ensureOpen();
        Device d = devices.get(name);
        if (d == null) {
            throw new ErrnoException(request.startsWith("RTM_GETLINK") ? "RTM_GETLINK " + name : request,
                    ErrnoException.ENODEV);
        }
        return d;
    }

    private void ensureOpen() throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
    }

    private static Route connectedRoute(String device, Ipv4Prefix prefix, Inet4Address address) {
        return new Route(prefix, null, device, Route.SCOPE_LINK, address, true);
    }

    private static void checkLength(int prefixLength) {
        if (prefixLength < 0 || prefixLength > 32) {
            throw new IllegalArgumentException("IPv4 prefix length must be 0..32: " + prefixLength);
        }
    }

    private static String addressText(String type, String device, Inet4Address address, int prefixLength) {
        return type + " " + address.getHostAddress() + "/" + prefixLength + " dev " + device;
    }
}
