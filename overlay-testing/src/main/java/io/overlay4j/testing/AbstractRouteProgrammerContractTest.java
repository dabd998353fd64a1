package io.overlay4j.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.RouteProgrammer;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/**
 * The behaviour every {@link RouteProgrammer} must show, run against each implementation (the rtnetlink programmer of
 * overlay-tun in a network namespace, and {@link InMemoryRouteProgrammer}). It holds what the interface promises
 * (idempotent mutations, {@link ErrnoException}s naming errno) and the Linux kernel's rules that code programming
 * routes relies on: connected routes follow addresses and link state, a route needs its device up and its gateway
 * on a connected subnet, {@code addRoute} keeps and {@code replaceRoute} replaces an existing route.
 *
 * <p>Programmers returned by {@link #newProgrammer()} are closed after each test.
 */
@Timeout(60)
public abstract class AbstractRouteProgrammerContractTest {
    /** The first device of the fresh network. */
    protected static final String DEVICE = "o4jc-a";
    /** The second device of the fresh network. */
    protected static final String OTHER = "o4jc-b";

    private final List<RouteProgrammer> programmers = new ArrayList<>();

    /**
     * A programmer of a fresh network stack (for the kernel: a new network namespace) that has exactly two devices
     * besides loopback, {@link #DEVICE} and {@link #OTHER}: both down, MTU 1500, without addresses; and no route in
     * the main table.
     */
    protected abstract RouteProgrammer newProgrammer() throws Exception;

    private RouteProgrammer programmer() throws Exception {
        RouteProgrammer p = newProgrammer();
        programmers.add(p);
        return p;
    }

    @AfterEach
    void closeProgrammers() {
        for (RouteProgrammer p : programmers) {
            p.close();
        }
        programmers.clear();
    }

    private static Inet4Address ip(String text) {
        return Ipv4Prefix.parseAddress(text);
    }

    private static Ipv4Prefix prefix(String text) {
        return Ipv4Prefix.parse(text);
    }

    private static Route connected(String cidr, String device, String source) {
        return new Route(prefix(cidr), null, device, Route.SCOPE_LINK, ip(source), true);
    }

    private static void assertErrno(int errno, Executable call) {
        ErrnoException e = assertThrows(ErrnoException.class, call);
        assertEquals(errno, e.errno(), e.getMessage());
    }

    @Test
    void linkIndexIsPositiveStableAndPerDevice() throws Exception {
        RouteProgrammer p = programmer();
        int a = p.linkIndex(DEVICE);
        assertTrue(a > 0, "index " + a);
        assertEquals(a, p.linkIndex(DEVICE));
        assertNotEquals(a, p.linkIndex(OTHER));
    }

    @Test
    void missingDeviceIsEnodev() throws Exception {
        RouteProgrammer p = programmer();
        String none = "o4jc-none";
        assertErrno(ErrnoException.ENODEV, () -> p.linkIndex(none));
        assertErrno(ErrnoException.ENODEV, () -> p.setLinkUp(none));
        assertErrno(ErrnoException.ENODEV, () -> p.setMtu(none, 1400));
        assertErrno(ErrnoException.ENODEV, () -> p.mtu(none));
        assertErrno(ErrnoException.ENODEV, () -> p.addAddress(none, ip("10.99.0.1"), 24));
        assertErrno(ErrnoException.ENODEV, () -> p.addresses(none));
        assertErrno(ErrnoException.ENODEV, () -> p.addRoute(Route.viaDevice(prefix("10.1.0.0/16"), none)));
        ErrnoException e = assertThrows(ErrnoException.class, () -> p.linkIndex(none));
        assertTrue(e.getMessage().contains(none), "the message names the device: " + e.getMessage());
        p.deleteRoute(Route.viaDevice(prefix("10.1.0.0/16"), none));
    }

    @Test
    void mtuIsPerDevice() throws Exception {
        RouteProgrammer p = programmer();
        assertEquals(1500, p.mtu(DEVICE));
        p.setMtu(DEVICE, 1400);
        p.setMtu(DEVICE, 1400);
        assertEquals(1400, p.mtu(DEVICE));
        assertEquals(1500, p.mtu(OTHER));
    }

    @Test
    void addressesAreIdempotentAndPerDevice() throws Exception {
        RouteProgrammer p = programmer();
        assertEquals(List.of(), p.addresses(DEVICE));
        p.addAddress(DEVICE, ip("100.96.1.0"), 32);
        p.addAddress(DEVICE, ip("100.96.1.0"), 32);
        assertEquals(List.of(prefix("100.96.1.0/32")), p.addresses(DEVICE));
        assertEquals(List.of(), p.addresses(OTHER));
        p.addAddress(DEVICE, ip("10.99.0.1"), 24);
        assertEquals(Set.of(prefix("100.96.1.0/32"), prefix("10.99.0.0/24")), Set.copyOf(p.addresses(DEVICE)),
                "listed as prefixes, host bits cleared");

        p.deleteAddress(DEVICE, ip("100.96.1.0"), 32);
        p.deleteAddress(DEVICE, ip("100.96.1.0"), 32);
        p.deleteAddress(DEVICE, ip("10.99.0.1"), 24);
        assertEquals(List.of(), p.addresses(DEVICE));
    }

    @Test
    void connectedRoutesFollowAddressesAndLinkState() throws Exception {
        RouteProgrammer p = programmer();
        p.addAddress(DEVICE, ip("10.99.0.1"), 24);
        p.addAddress(DEVICE, ip("100.96.1.0"), 32);
        assertEquals(List.of(), p.routes(), "no connected route while the device is down");
        p.setLinkUp(DEVICE);
        p.setLinkUp(DEVICE);
        Route connected = connected("10.99.0.0/24", DEVICE, "10.99.0.1");
        assertEquals(List.of(connected), p.routes(), "a /32 makes no connected route");
        p.setLinkDown(DEVICE);
        assertEquals(List.of(), p.routes());
        p.setLinkUp(DEVICE);
        assertEquals(List.of(connected), p.routes());
        p.deleteAddress(DEVICE, ip("10.99.0.1"), 24);
        assertEquals(List.of(), p.routes());
    }

    @Test
    void routesAreAddedReplacedAndDeletedIdempotently() throws Exception {
        RouteProgrammer p = programmer();
        p.setLinkUp(DEVICE);
        p.setLinkUp(OTHER);
        p.addAddress(DEVICE, ip("10.99.0.1"), 24);
        p.addAddress(OTHER, ip("10.98.0.1"), 24);
        Route connectedA = connected("10.99.0.0/24", DEVICE, "10.99.0.1");
        Route connectedB = connected("10.98.0.0/24", OTHER, "10.98.0.1");

        Route overlay = Route.viaDevice(prefix("100.96.0.0/16"), DEVICE);
        p.addRoute(overlay);
        p.addRoute(overlay);
        p.addRoute(Route.viaDevice(prefix("100.96.0.0/16"), OTHER));
        assertEquals(Set.of(connectedA, connectedB, overlay), Set.copyOf(p.routes()),
                "addRoute keeps the existing route to a destination");

        Route viaPeer = Route.viaGateway(prefix("100.96.0.0/16"), ip("10.98.0.2"), OTHER);
        p.replaceRoute(viaPeer);
        p.replaceRoute(viaPeer);
        Route dflt = Route.viaGateway(prefix("0.0.0.0/0"), ip("10.99.0.254"), DEVICE);
        p.addRoute(dflt);
        Route sourced = new Route(prefix("100.97.0.0/16"), null, DEVICE, Route.SCOPE_UNIVERSE, ip("10.98.0.1"),
                false);
        p.addRoute(sourced);
        assertEquals(Set.of(connectedA, connectedB, viaPeer, dflt, sourced), Set.copyOf(p.routes()));
        assertEquals(5, p.routes().size(), "one route per destination: " + p.routes());

        p.deleteRoute(viaPeer);
        p.deleteRoute(viaPeer);
        p.deleteRoute(Route.viaGateway(prefix("0.0.0.0/0"), ip("10.99.0.253"), DEVICE));
        assertTrue(p.routes().contains(dflt), "a delete naming another gateway leaves the route");
        p.deleteRoute(Route.viaDevice(prefix("0.0.0.0/0"), DEVICE));
        p.deleteRoute(Route.viaDevice(prefix("100.97.0.0/16"), OTHER));
        assertTrue(p.routes().contains(sourced), "a delete naming another device leaves the route");
        p.deleteRoute(sourced);
        assertEquals(Set.of(connectedA, connectedB), Set.copyOf(p.routes()));
    }

    @Test
    void kernelRefusalsAreErrnoExceptions() throws Exception {
        RouteProgrammer p = programmer();
        Route overlay = Route.viaDevice(prefix("100.96.0.0/16"), DEVICE);
        assertErrno(ErrnoException.ENETDOWN, () -> p.addRoute(overlay));
        p.setLinkUp(DEVICE);
        p.addAddress(DEVICE, ip("10.99.0.1"), 24);
        assertErrno(ErrnoException.ENETUNREACH,
                () -> p.addRoute(Route.viaGateway(prefix("100.97.0.0/16"), ip("192.0.2.1"), DEVICE)));
        assertErrno(ErrnoException.EINVAL, () -> p.addRoute(
                new Route(prefix("100.98.0.0/16"), null, DEVICE, Route.SCOPE_UNIVERSE, ip("192.0.2.7"), false)));
        ErrnoException e = assertThrows(ErrnoException.class,
                () -> p.replaceRoute(Route.viaGateway(prefix("100.97.0.0/16"), ip("192.0.2.1"), DEVICE)));
        assertTrue(e.getMessage().contains("100.97.0.0/16 via 192.0.2.1 dev " + DEVICE),
                "the message names the route: " + e.getMessage());
        assertEquals(List.of(connected("10.99.0.0/24", DEVICE, "10.99.0.1")), p.routes());
    }

    @Test
    void settingADeviceDownRemovesItsRoutes() throws Exception {
        RouteProgrammer p = programmer();
        p.setLinkUp(DEVICE);
        p.setLinkUp(OTHER);
        p.addAddress(DEVICE, ip("10.99.0.1"), 24);
        p.addRoute(Route.viaDevice(prefix("100.96.0.0/16"), DEVICE));
        p.addRoute(Route.viaGateway(prefix("100.97.0.0/16"), ip("10.99.0.2"), DEVICE));
        Route other = Route.viaDevice(prefix("100.98.0.0/16"), OTHER);
        p.addRoute(other);
        p.setLinkDown(DEVICE);
        assertEquals(List.of(other), p.routes());
        p.setLinkUp(DEVICE);
        assertEquals(Set.of(other, connected("10.99.0.0/24", DEVICE, "10.99.0.1")), Set.copyOf(p.routes()),
                "up again restores only the connected route");
    }

    @Test
    void callsFromManyThreadsAllTakeEffect() throws Exception {
        RouteProgrammer p = programmer();
        p.setLinkUp(DEVICE);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> done = new ArrayList<>();
            Set<Route> expected = new HashSet<>();
            for (int t = 0; t < 4; t++) {
                List<Route> mine = new ArrayList<>();
                for (int i = 0; i < 16; i++) {
                    mine.add(Route.viaDevice(Ipv4Prefix.of(ip("100.96." + (t * 16 + i) + ".0"), 24), DEVICE));
                }
                expected.addAll(mine);
                done.add(pool.submit(() -> {
                    for (Route r : mine) {
                        p.addRoute(r);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
            assertEquals(expected, Set.copyOf(p.routes()));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void closeIsIdempotentAndEndsTheProgrammer() throws Exception {
        RouteProgrammer p = programmer();
        p.linkIndex(DEVICE);
        p.close();
        p.close();
        IOException e = assertThrows(IOException.class, () -> p.linkIndex(DEVICE));
        assertTrue(e instanceof ClosedChannelException, "closed: " + e);
        assertThrows(ClosedChannelException.class, p::routes);
    }
}
