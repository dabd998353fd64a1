package io.overlay4j;

import java.io.IOException;
import java.net.Inet4Address;
import java.util.List;

/**
 * Programs the kernel's links, addresses and routes in the network namespace it was opened in.
 *
 * <p>Every mutation is idempotent: adding what exists, or deleting what is gone, is not an error. Kernel refusals are
 * {@link ErrnoException}s naming the request and errno. Thread-safe.
 */
public interface RouteProgrammer extends AutoCloseable {

    /**
     * The interface index of a device.
     *
     * @throws ErrnoException with ENODEV if there is no such device
     */
    int linkIndex(String device) throws IOException;

    /** Sets a device administratively up. */
    void setLinkUp(String device) throws IOException;

    /** Sets a device administratively down. */
    void setLinkDown(String device) throws IOException;

    /** Sets a device's MTU. */
    void setMtu(String device, int mtu) throws IOException;

    /** The device's MTU. */
    int mtu(String device) throws IOException;

    /** Adds {@code address/prefixLength} to a device, e.g. {@code 100.96.1.0/32} on {@code flannel0}. */
    void addAddress(String device, Inet4Address address, int prefixLength) throws IOException;

    /** Removes an address from a device. */
    void deleteAddress(String device, Inet4Address address, int prefixLength) throws IOException;

    /** The IPv4 addresses on a device, each as address/length. */
    List<Ipv4Prefix> addresses(String device) throws IOException;

    /** Adds a route; an identical existing route is not an error. */
    void addRoute(Route route) throws IOException;

    /** Adds or replaces the route to {@code route.destination()}. */
    void replaceRoute(Route route) throws IOException;

    /** Deletes a route; a missing route is not an error. */
    void deleteRoute(Route route) throws IOException;

    /** The IPv4 unicast routes of the main table, as {@code ip route} lists them. */
    List<Route> routes() throws IOException;

    /** Closes the netlink socket. Idempotent. */
    @Override
    void close();
}
