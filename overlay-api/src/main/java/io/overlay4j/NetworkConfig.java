package io.overlay4j;

import io.overlay4j.OverlayException.Kind;
import io.overlay4j.internal.Json;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.Inet4Address;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * A network's configuration: flannel's {@code <prefix>/config} JSON with its defaults applied and validated
 * (flannel-facts §1). Immutable; build with {@link #parse(String)} or {@link #builder()}.
 *
 * <p>Example: {@code {"Network":"100.96.0.0/16","Backend":{"Type":"udp"}}} gives SubnetLen 24, SubnetMin
 * {@code 100.96.1.0}, SubnetMax {@code 100.96.255.0}, backend {@code udp}.
 *
 * <p>Parsing follows Go's {@code encoding/json} as flanneld uses it: keys match case-insensitively, unknown keys are
 * ignored, a value of the wrong JSON type is an error. Validation errors carry flannel's exact messages. A config
 * whose {@code Backend} is {@code {}} or {@code null} parses with an empty {@link #backendType()}; the node reports
 * {@code unknown backend type: } when it looks the backend up, as flanneld does. IPv6 settings are not validated:
 * only the {@code EnableIPv6} flag is kept (overlay4j's backends are IPv4-only).
 */
public final class NetworkConfig {
    private final Ipv4Prefix network;
    private final int subnetLen;
    private final int subnetMin;
    private final int subnetMax;
    private final String backendType;
    private final String backendJson;
    private final boolean enableIPv6;
    private final boolean enableNFTables;

    NetworkConfig(Ipv4Prefix network, int subnetLen, int subnetMin, int subnetMax, String backendType,
                  String backendJson, boolean enableIPv6, boolean enableNFTables) {
        this.network = network;
        this.subnetLen = subnetLen;
        this.subnetMin = subnetMin;
        this.subnetMax = subnetMax;
        this.backendType = backendType;
        this.backendJson = backendJson;
        this.enableIPv6 = enableIPv6;
        this.enableNFTables = enableNFTables;
    }

    /**
     * Parses and validates flannel's config JSON (keys case-insensitive, unknown keys ignored, wrong types rejected).
     *
     * @throws OverlayException {@code CONFIG_INVALID} with flannel's message, e.g.
     *                          {@code SubnetLen must be less than /31}
     */
    public static NetworkConfig parse(String json) {
        Map<String, Object> obj;
        try {
            obj = Json.parseObject(json);
        } catch (IllegalArgumentException e) {
            throw invalid(e.getMessage());
        }
        if (!bool(obj, "EnableIPv4", true)) {
            throw invalid("EnableIPv4 is false, but overlay4j supports IPv4 networks only");
        }
        boolean nftables = bool(obj, "EnableNFTables", false);
        uint(obj, "IPv6SubnetLen");
        Builder b = builder();
        b.enableNFTables = nftables;
        b.enableIPv6 = bool(obj, "EnableIPv6", false);
        String key = Json.findKey(obj, "Network");
        if (key != null) {
            b.network = parseNetwork(goText(obj.get(key)));
        }
        b.subnetLen = uint(obj, "SubnetLen");
        b.subnetMin = ip4(obj, "SubnetMin");
        b.subnetMax = ip4(obj, "SubnetMax");
        key = Json.findKey(obj, "Backend");
        if (key != null) {
            b.backend = obj.get(key);
            b.backendSet = true;
        }
        return b.build();
    }

    private static OverlayException invalid(String message) {
        return new OverlayException(Kind.CONFIG_INVALID, message);
    }

    private static String typeError(Object v, String field, String goType) {
        String what = Json.typeName(v);
        if (v instanceof Number) {
            what = "number " + Json.write(v);
        }
        return "json: cannot unmarshal " + what + " into Go struct field Config." + field + " of type " + goType;
    }

    private static boolean bool(Map<String, Object> obj, String field, boolean defaultValue) {
        String key = Json.findKey(obj, field);
        Object v = key == null ? null : obj.get(key);
        if (v == null) {
            return defaultValue; // Go leaves the field alone for null
        }
        if (!(v instanceof Boolean)) {
            throw invalid(typeError(v, field, "bool"));
        }
        return (Boolean) v;
    }

    private static int uint(Map<String, Object> obj, String field) {
        Object v = Json.get(obj, field);
        if (v == null) {
            return 0;
        }
        if (!(v instanceof Number)) {
            throw invalid(typeError(v, field, "uint"));
        }
        BigInteger n;
        try {
            n = new BigDecimal(v.toString()).toBigIntegerExact();
        } catch (ArithmeticException e) {
            throw invalid(typeError(v, field, "uint"));
        }
        if (!(v instanceof Long) || n.signum() < 0) {
            throw invalid(typeError(v, field, "uint"));
        }
        // Anything above 30 is rejected by validation; keep huge values huge without overflowing.
        return n.compareTo(BigInteger.valueOf(Integer.MAX_VALUE)) > 0 ? Integer.MAX_VALUE : n.intValue();
    }

    /** flannel's IP4/IP4Net UnmarshalJSON trim the quotes off whatever raw JSON they get, even null or a number. */
    private static String goText(Object v) {
        return v instanceof String ? (String) v : Json.write(v);
    }

    private static int ip4(Map<String, Object> obj, String field) {
        String key = Json.findKey(obj, field);
        if (key == null) {
            return 0;
        }
        String text = goText(obj.get(key));
        if (text.indexOf(':') >= 0) {
            throw invalid("invalid IPv4 address: " + text);
        }
        try {
            return Ipv4Prefix.toInt(Ipv4Prefix.parseAddress(text));
        } catch (IllegalArgumentException e) {
            throw invalid("invalid IP address: " + text);
        }
    }

    private static Ipv4Prefix parseNetwork(String text) {
        int slash = text.indexOf('/');
        if (slash > 0 && text.substring(0, slash).indexOf(':') >= 0) {
            throw invalid("invalid IPv4 CIDR format");
        }
        try {
            return Ipv4Prefix.parse(text);
        } catch (IllegalArgumentException e) {
            throw invalid("invalid CIDR address: " + text);
        }
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
        if (backendJson == null) {
            return defaultValue;
        }
        Object backend = Json.parse(backendJson);
        if (!(backend instanceof Map)) {
            return defaultValue;
        }
        @SuppressWarnings("unchecked")
        Object v = Json.get((Map<String, Object>) backend, key);
        if (v == null) {
            return defaultValue;
        }
        if (!(v instanceof Long) || (Long) v < Integer.MIN_VALUE || (Long) v > Integer.MAX_VALUE) {
            throw invalid("Backend property " + key + " must be an integer: " + Json.write(v));
        }
        return ((Long) v).intValue();
    }

    /** Whether IPv6 is enabled (overlay4j's backends are IPv4-only for now). */
    public boolean enableIPv6() {
        return enableIPv6;
    }

    /**
     * Whether the traffic rules (masquerade, forward) go into nftables rather than iptables ({@code EnableNFTables},
     * flannel v0.25+); default false. Read by daemons that install them (overlayd), not by the library.
     */
    public boolean enableNFTables() {
        return enableNFTables;
    }

    /** The config as flannel JSON, with the effective values written out; {@link #parse} reads it back equal. */
    public String toJson() {
        StringBuilder sb = new StringBuilder("{\"Network\":");
        Json.writeString(sb, network.toString());
        sb.append(",\"SubnetLen\":").append(subnetLen).append(",\"SubnetMin\":");
        Json.writeString(sb, Ipv4Prefix.fromInt(subnetMin).getHostAddress());
        sb.append(",\"SubnetMax\":");
        Json.writeString(sb, Ipv4Prefix.fromInt(subnetMax).getHostAddress());
        if (enableIPv6) {
            sb.append(",\"EnableIPv6\":true");
        }
        if (enableNFTables) {
            sb.append(",\"EnableNFTables\":true");
        }
        if (backendJson != null) {
            sb.append(",\"Backend\":").append(backendJson);
        }
        return sb.append('}').toString();
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof NetworkConfig)) {
            return false;
        }
        NetworkConfig c = (NetworkConfig) o;
        return network.equals(c.network) && subnetLen == c.subnetLen && subnetMin == c.subnetMin
                && subnetMax == c.subnetMax && backendType.equals(c.backendType)
                && Objects.equals(backendJson, c.backendJson) && enableIPv6 == c.enableIPv6
                && enableNFTables == c.enableNFTables;
    }

    @Override
    public int hashCode() {
        return Objects.hash(network, subnetLen, subnetMin, subnetMax, backendType, backendJson, enableIPv6,
                enableNFTables);
    }

    @Override
    public String toString() {
        return toJson();
    }

    /** Builds a {@link NetworkConfig}; unset fields get flannel's defaults. */
    public static final class Builder {
        private Ipv4Prefix network;
        private int subnetLen;
        private int subnetMin;
        private int subnetMax;
        private Object backend;
        private boolean backendSet;
        private boolean enableIPv6;
        private boolean enableNFTables;

        Builder() {
        }

        /** Required: the overlay range. Host bits are already clear in an {@link Ipv4Prefix}. */
        public Builder network(Ipv4Prefix network) {
            this.network = network;
            return this;
        }

        /** The per-node subnet length; 0 (the default) derives it from the network (flannel-facts §1.3). */
        public Builder subnetLen(int subnetLen) {
            this.subnetLen = subnetLen;
            return this;
        }

        /** The lowest subnet; {@code null} or {@code 0.0.0.0} (the default) means the network's second subnet. */
        public Builder subnetMin(Inet4Address subnetMin) {
            this.subnetMin = subnetMin == null ? 0 : Ipv4Prefix.toInt(subnetMin);
            return this;
        }

        /** The highest subnet; {@code null} or {@code 0.0.0.0} (the default) means the network's last subnet. */
        public Builder subnetMax(Inet4Address subnetMax) {
            this.subnetMax = subnetMax == null ? 0 : Ipv4Prefix.toInt(subnetMax);
            return this;
        }

        /**
         * The backend object as JSON, e.g. {@code {"Type":"udp","Port":8285}}; {@code null} (the default) means no
         * {@code Backend}, so type udp. The JSON is checked in {@link #build()}.
         */
        public Builder backendJson(String backendJson) {
            if (backendJson == null) {
                this.backend = null;
                this.backendSet = false;
                return this;
            }
            try {
                this.backend = Json.parse(backendJson);
            } catch (IllegalArgumentException e) {
                throw invalid("error decoding Backend property of config: " + e.getMessage());
            }
            this.backendSet = true;
            return this;
        }

        /** Sets the {@code EnableIPv6} flag (kept and written, not acted on); default false. */
        public Builder enableIPv6(boolean enableIPv6) {
            this.enableIPv6 = enableIPv6;
            return this;
        }

        /** Sets {@code EnableNFTables} (see {@link NetworkConfig#enableNFTables()}); default false. */
        public Builder enableNFTables(boolean enableNFTables) {
            this.enableNFTables = enableNFTables;
            return this;
        }

        /**
         * Applies defaults and validates, as flannel's {@code CheckNetworkConfig}.
         *
         * @throws OverlayException {@code CONFIG_INVALID} with flannel's message
         */
        public NetworkConfig build() {
            String backendType = "udp";
            String backendJson = null;
            if (backendSet) {
                backendJson = Json.write(backend);
                backendType = backendType(backend);
            }
            if (network == null || (network.networkInt() == 0 && network.length() == 0)) {
                throw invalid("please define a correct Network parameter in the flannel config");
            }
            int prefix = network.length();
            int len = subnetLen;
            if (len < 0) {
                throw invalid("SubnetLen must not be negative: " + len);
            }
            if (len > 0) {
                if (len > 30) {
                    throw invalid("SubnetLen must be less than /31");
                }
                if (len < prefix + 2) {
                    throw invalid("network must be able to accommodate at least four subnets");
                }
            } else {
                if (prefix > 28) {
                    throw invalid("network is too small. Minimum useful network prefix is /28");
                }
                len = prefix <= 22 ? 24 : prefix + 2;
            }
            int size = 1 << (32 - len);
            int min = subnetMin;
            if (min == 0) {
                min = network.networkInt() + size;
            } else if (!network.contains(min)) {
                throw invalid("SubnetMin is not in the range of the Network");
            }
            int max = subnetMax;
            if (max == 0) {
                max = (int) (network.networkInt() + network.size()) - size;
            } else if (!network.contains(max)) {
                throw invalid("SubnetMax is not in the range of the Network");
            }
            int mask = Ipv4Prefix.mask(len);
            if ((min & mask) != min) {
                throw invalid("SubnetMin is not on a SubnetLen boundary: " + Ipv4Prefix.fromInt(min).getHostAddress());
            }
            if ((max & mask) != max) {
                throw invalid("SubnetMax is not on a SubnetLen boundary: " + Ipv4Prefix.fromInt(max).getHostAddress());
            }
            return new NetworkConfig(network, len, min, max, backendType, backendJson, enableIPv6,
                    enableNFTables);
        }

        private static String backendType(Object backend) {
            if (backend == null) {
                return ""; // "Backend":null decodes to an empty type
            }
            if (!(backend instanceof Map)) {
                throw invalid("error decoding Backend property of config: json: cannot unmarshal "
                        + Json.typeName(backend) + " into Go value of type struct { Type string }");
            }
            @SuppressWarnings("unchecked")
            Object type = Json.get((Map<String, Object>) backend, "Type");
            if (type == null) {
                return "";
            }
            if (!(type instanceof String)) {
                throw invalid("error decoding Backend property of config: json: cannot unmarshal "
                        + Json.typeName(type) + " into Go struct field .Type of type string");
            }
            return ((String) type).toLowerCase(Locale.ROOT);
        }
    }
}
