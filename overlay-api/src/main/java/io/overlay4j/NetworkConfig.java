package io.overlay4j;

import java.net.Inet4Address;
import java.util.Objects;

/**
 * A network's configuration: flannel's {@code <prefix>/config} JSON with its defaults applied and validated
 * (flannel-facts §1). Immutable; build with {@link #parse(String)} or {@link #builder()}.
 *
 * <p>Example: {@code {"Network":"100.96.0.0/16","Backend":{"Type":"udp"}}} gives SubnetLen 24, SubnetMin
 * {@code 100.96.1.0}, SubnetMax {@code 100.96.255.0}, backend {@code udp}.
 */
public final class NetworkConfig {
    private final Ipv4Prefix network;
    private final int subnetLen;
    private final int subnetMin;
    private final int subnetMax;
    private final String backendType;
    private final String backendJson;
    private final boolean enableIPv6;

    NetworkConfig(Ipv4Prefix network, int subnetLen, int subnetMin, int subnetMax, String backendType,
                  String backendJson, boolean enableIPv6) {
        this.network = network;
        this.subnetLen = subnetLen;
        this.subnetMin = subnetMin;
        this.subnetMax = subnetMax;
        this.backendType = backendType;
        this.backendJson = backendJson;
        this.enableIPv6 = enableIPv6;
    }

    /**
     * Parses and validates flannel's config JSON (keys case-insensitive, unknown keys ignored, wrong types rejected).
     *
     * @throws OverlayException {@code CONFIG_INVALID} with flannel's message, e.g.
     *                          {@code SubnetLen must be less than /31}
     */
    public static NetworkConfig parse(String json) {
        throw new UnsupportedOperationException("TODO");
    }

    /** A builder for configs made in code; {@link Builder#build()} applies the same defaults and checks. */
    public static Builder builder() {
        return new Builder();
    }

    /** The whole overlay range, e.g. {@code 100.96.0.0/16}. */
    public Ipv4Prefix network() {
        return network;
    }

    /** The length of each node's subnet, e.g. 24. */
    public int subnetLen() {
        return subnetLen;
    }

    /** The lowest subnet handed out (default: the second subnet of the network). */
    public Inet4Address subnetMin() {
        return Ipv4Prefix.fromInt(subnetMin);
    }

    /** The highest subnet handed out, inclusive (default: the last subnet of the network). */
    public Inet4Address subnetMax() {
        return Ipv4Prefix.fromInt(subnetMax);
    }

    /** The backend type, lower case: {@code udp} when the config has no {@code Backend}. */
    public String backendType() {
        return backendType;
    }

    /** The raw {@code Backend} JSON object, or {@code null} when absent. */
    public String backendJson() {
        return backendJson;
    }

    /**
     * A numeric backend option looked up case-insensitively, e.g. {@code backendInt("Port", 8285)}.
     *
     * @throws OverlayException {@code CONFIG_INVALID} if present but not an integer
     */
    public int backendInt(String key, int defaultValue) {
        throw new UnsupportedOperationException("TODO");
    }

    /** Whether IPv6 is enabled (overlay4j's backends are IPv4-only for now). */
    public boolean enableIPv6() {
        return enableIPv6;
    }

    /** The config as flannel JSON, with the effective values written out; {@link #parse} reads it back equal. */
    public String toJson() {
        throw new UnsupportedOperationException("TODO");
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof NetworkConfig)) {
            return false;
        }
        NetworkConfig c = (NetworkConfig) o;
        return network.equals(c.network) && subnetLen == c.subnetLen && subnetMin == c.subnetMin
                && subnetMax == c.subnetMax && backendType.equals(c.backendType)
                && Objects.equals(backendJson, c.backendJson) && enableIPv6 == c.enableIPv6;
    }

    @Override
    public int hashCode() {
        return Objects.hash(network, subnetLen, subnetMin, subnetMax, backendType, backendJson, enableIPv6);
    }

    @Override
    public String toString() {
        return toJson();
    }

    /** Builds a {@link NetworkConfig}; unset fields get flannel's defaults. */
    public static final class Builder {
        Builder() {
        }

        /** Required: the overlay range. */
        public Builder network(Ipv4Prefix network) {
            throw new UnsupportedOperationException("TODO");
        }

        /** The per-node subnet length; default derived from the network (flannel-facts §1.3). */
        public Builder subnetLen(int subnetLen) {
            throw new UnsupportedOperationException("TODO");
        }

        /** The lowest subnet; default the network's second subnet. */
        public Builder subnetMin(Inet4Address subnetMin) {
            throw new UnsupportedOperationException("TODO");
        }

        /** The highest subnet; default the network's last subnet. */
        public Builder subnetMax(Inet4Address subnetMax) {
            throw new UnsupportedOperationException("TODO");
        }

        /** The backend object as JSON, e.g. {@code {"Type":"udp","Port":8285}}; default none (udp). */
        public Builder backendJson(String backendJson) {
            throw new UnsupportedOperationException("TODO");
        }

        /**
         * Applies defaults and validates.
         *
         * @throws OverlayException {@code CONFIG_INVALID} with flannel's message
         */
        public NetworkConfig build() {
            throw new UnsupportedOperationException("TODO");
        }
    }
}
