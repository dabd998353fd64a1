package io.overlay4j;

import static java.util.Objects.requireNonNull;

import com.google.common.net.InetAddresses;
import java.net.Inet4Address;

/**
 * An IPv4 route in the kernel's main table.
 *
 * @param destination     where the route leads, e.g. {@code 100.96.0.0/16}
 * @param gateway         the next hop, or {@code null} for a directly connected route
 * @param device          the output device name, e.g. {@code flannel0}
 * @param scope           the route scope: {@link #SCOPE_UNIVERSE} or {@link #SCOPE_LINK}
 * @param preferredSource the preferred source address ({@code src}), or {@code null}
 * @param kernel          whether the kernel made it (proto kernel) as a side effect of an address
 * @param flags           next-hop flags: {@link #FLAG_ONLINK} or 0
 */
public record Route(Ipv4Prefix destination, Inet4Address gateway, String device, int scope,
                    Inet4Address preferredSource, boolean kernel, int flags) {

    /** {@code RT_SCOPE_UNIVERSE} from {@code <linux/rtnetlink.h>}. */
    public static final int SCOPE_UNIVERSE = 0;
    /** {@code RT_SCOPE_LINK}. */
    public static final int SCOPE_LINK = 253;
    /** {@code RT_SCOPE_HOST}. */
    public static final int SCOPE_HOST = 254;
    /**
     * {@code RTNH_F_ONLINK} from {@code <linux/rtnetlink.h>}: the gateway is on the link even though no address of the
     * device covers it ({@code ip route ... onlink}), as flannel's vxlan routes {@code via <subnet base>}.
     */
    public static final int FLAG_ONLINK = 4;

    public Route {
        requireNonNull(destination, "destination");
        requireNonNull(device, "device");
        if ((flags & ~FLAG_ONLINK) != 0) {
            throw new IllegalArgumentException("unsupported route flags: 0x" + Integer.toHexString(flags));
        }
    }

    /** A route without flags (the form before {@link #flags()} existed). */
    public Route(Ipv4Prefix destination, Inet4Address gateway, String device, int scope, Inet4Address preferredSource,
                 boolean kernel) {
        this(destination, gateway, device, scope, preferredSource, kernel, 0);
    }

    /** A route to {@code destination} out of {@code device} with no gateway, scope universe, as flannel installs. */
    public static Route viaDevice(Ipv4Prefix destination, String device) {
        return new Route(destination, null, device, SCOPE_UNIVERSE, null, false);
    }

    /** A route to {@code destination} via {@code gateway} out of {@code device}. */
    public static Route viaGateway(Ipv4Prefix destination, Inet4Address gateway, String device) {
        return new Route(destination, requireNonNull(gateway, "gateway"), device, SCOPE_UNIVERSE, null, false);
    }

    /**
     * {@code <destination> via <gateway> dev <device> onlink}: the gateway is taken as directly reachable on the
     * device whatever its addresses, as flannel's vxlan backend routes a peer's subnet via its base address.
     */
    public static Route onlink(Ipv4Prefix destination, Inet4Address gateway, String device) {
        return new Route(destination, requireNonNull(gateway, "gateway"), device, SCOPE_UNIVERSE, null, false,
                FLAG_ONLINK);
    }

    /** Whether the route carries {@link #FLAG_ONLINK}. */
    public boolean isOnlink() {
        return (flags & FLAG_ONLINK) != 0;
    }

    /**
     * {@code ip route}'s form, e.g. {@code 100.96.1.0/24 dev docker0 proto kernel scope link src 100.96.1.1} or
     * {@code 100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink}.
     */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(destination.length() == 0 ? "default" : destination.toString());
        if (gateway != null) {
            sb.append(" via ").append(InetAddresses.toAddrString(gateway));
        }
        sb.append(" dev ").append(device);
        if (kernel) {
            sb.append(" proto kernel");
        }
        if (scope == SCOPE_LINK) {
            sb.append(" scope link");
        } else if (scope == SCOPE_HOST) {
            sb.append(" scope host");
        }
        if (preferredSource != null) {
            sb.append(" src ").append(InetAddresses.toAddrString(preferredSource));
        }
        if (isOnlink()) {
            sb.append(" onlink");
        }
        return sb.toString();
    }
}
