package io.overlay4j;

import static java.util.Objects.requireNonNull;

import java.net.Inet4Address;

/**
 * What a node publishes with its lease: flannel's {@code LeaseAttrs}. {@link #toJson()} writes flannel's JSON byte for
 * byte, e.g. {@code {"PublicIP":"10.168.0.2","PublicIPv6":null}} for the udp backend (no BackendType, no
 * BackendData).
 *
 * @param publicIp    the node's external IPv4 address, where peers send encapsulated traffic
 * @param publicIpv6  the external IPv6 address in RFC 5952 form, or {@code null}
 * @param backendType the backend type ({@code "vxlan"}, {@code "host-gw"}), or {@code null}/empty for udp
 * @param backendData raw backend-specific JSON (for vxlan {@code {"VNI":1,"VtepMAC":"..."}}), or {@code null}
 */
public record LeaseAttributes(Inet4Address publicIp, String publicIpv6, String backendType,
                              String backendData) {

    public LeaseAttributes {
        requireNonNull(publicIp, "publicIp");
        if (backendType != null && backendType.isEmpty()) {
            backendType = null;
        }
        if (backendData != null && backendData.isEmpty()) {
            backendData = null;
        }
    }

    /** The attributes of a udp-backend lease: only the public address. */
    public static LeaseAttributes udp(Inet4Address publicIp) {
        return new LeaseAttributes(publicIp, null, null, null);
    }

    /** flannel's compact JSON, fields in flannel's order, empty ones left out as flannel's {@code omitempty} does. */
    public String toJson() {
        return io.overlay4j.internal.LeaseJson.write(this);
    }

    /**
     * Parses a lease value as flannel reads it (keys matched case-insensitively, unknown keys ignored).
     *
     * @throws OverlayException of kind {@link OverlayException.Kind#STORE_CORRUPT} if it cannot be read
     */
    public static LeaseAttributes parse(String json) {
        return io.overlay4j.internal.LeaseJson.read(json);
    }
}
