package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.net.InetAddresses;
import java.net.Inet4Address;
import java.net.InetAddress;

/**
 * An IPv4 network prefix such as {@code 100.96.1.0/24}: an address with its host bits cleared and a length 0–32.
 *
 * <p>Immutable. {@link #toString()} gives the CIDR form ({@code 100.96.1.0/24}) and {@link #toSubnetKey()} flannel's
 * etcd key form ({@code 100.96.1.0-24}); both round-trip through {@link #parse} and {@link #fromSubnetKey}.
 * Addresses are handled as {@code int}s in network order (the first octet in the high byte) so the data plane can
 * test membership without allocating.
 */
public final class Ipv4Prefix implements Comparable<Ipv4Prefix> {
    private final int network;
    private final int length;

    private Ipv4Prefix(int network, int length) {
        this.network = network;
        this.length = length;
    }

    /**
     * The prefix of length {@code length} containing {@code address}; host bits are cleared, as flannel does
     * ({@code 10.5.1.7/16} becomes {@code 10.5.0.0/16}).
     */
    public static Ipv4Prefix of(int address, int length) {
        checkArgument(length >= 0 && length <= 32, "IPv4 prefix length must be 0..32: %s", length);
        return new Ipv4Prefix(address & mask(length), length);
    }

    /** As {@link #of(int, int)}, from an {@link Inet4Address}. */
    public static Ipv4Prefix of(Inet4Address address, int length) {
        return of(toInt(address), length);
    }

    /**
     * Parses CIDR notation, {@code "100.96.0.0/16"}. Host bits are cleared. Never touches DNS.
     *
     * @throws IllegalArgumentException if the text is not an IPv4 address, a slash and a length 0–32
     */
    public static Ipv4Prefix parse(String cidr) {
        int slash = cidr.indexOf('/');
        checkArgument(slash > 0, "invalid CIDR address: %s", cidr);
        return of(parseAddress(cidr.substring(0, slash), cidr), parseLength(cidr.substring(slash + 1), cidr));
    }

    /**
     * Parses flannel's subnet key form, {@code "10.5.34.0-24"} (the last path element of
     * {@code /coreos.com/network/subnets/10.5.34.0-24}). Unlike flannel, {@code -32} is accepted.
     *
     * @throws IllegalArgumentException if the text is not in that form
     */
    public static Ipv4Prefix fromSubnetKey(String key) {
        int dash = key.lastIndexOf('-');
        checkArgument(dash > 0, "not a subnet key: %s", key);
        return of(parseAddress(key.substring(0, dash), key), parseLength(key.substring(dash + 1), key));
    }

    /** The network address as an int in network order. */
    public int networkInt() {
        return network;
    }

    /** The network address, e.g. {@code 100.96.1.0}. */
    public Inet4Address network() {
        return fromInt(network);
    }

    /** The prefix length. */
    public int length() {
        return length;
    }

    /** The netmask as an int, e.g. {@code 0xffffff00} for /24. */
    public int maskInt() {
        return mask(length);
    }

    /** The number of addresses in this prefix (2<sup>32-length</sup>). */
    public long size() {
        return 1L << (32 - length);
    }

    /** The address at {@code offset} within this prefix, e.g. {@code 1} for the first host address. */
    public Inet4Address addressAt(long offset) {
        checkArgument(offset >= 0 && offset < size(), "offset %s outside %s", offset, this);
        return fromInt((int) (network + offset));
    }

    /** Whether {@code address} (network order int) lies in this prefix. Allocation-free. */
    public boolean contains(int address) {
        return (address & mask(length)) == network;
    }

    /** Whether {@code address} lies in this prefix. */
    public boolean contains(Inet4Address address) {
        return contains(toInt(address));
    }

    /** Whether {@code other} lies entirely in this prefix. */
    public boolean contains(Ipv4Prefix other) {
        return other.length >= length && contains(other.network);
    }

    /** Whether the two prefixes share any address (compared under the shorter mask, as flannel does). */
    public boolean overlaps(Ipv4Prefix other) {
        int m = mask(Math.min(length, other.length));
        return (network & m) == (other.network & m);
    }

    /** flannel's etcd key form, {@code 100.96.1.0-24}. */
    public String toSubnetKey() {
        return InetAddresses.toAddrString(network()) + "-" + length;
    }

    /** CIDR form, {@code 100.96.1.0/24}. */
    @Override
    public String toString() {
        return InetAddresses.toAddrString(network()) + "/" + length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Ipv4Prefix && ((Ipv4Prefix) o).network == network && ((Ipv4Prefix) o).length == length;
    }

    @Override
    public int hashCode() {
        return network * 31 + length;
    }

    /** Orders by network address (unsigned), then by length. */
    @Override
    public int compareTo(Ipv4Prefix o) {
        int c = Integer.compareUnsigned(network, o.network);
        return c != 0 ? c : Integer.compare(length, o.length);
    }

    /** The netmask for a prefix length, as an int. */
    public static int mask(int length) {
        return length == 0 ? 0 : -1 << (32 - length);
    }

    /** An {@link Inet4Address} as an int in network order. */
    public static int toInt(Inet4Address address) {
        byte[] b = address.getAddress();
        return (b[0] & 0xff) << 24 | (b[1] & 0xff) << 16 | (b[2] & 0xff) << 8 | (b[3] & 0xff);
    }

    /** An int in network order as an {@link Inet4Address}. */
    public static Inet4Address fromInt(int address) {
        return InetAddresses.fromInteger(address);
    }

    /**
     * Parses a dotted-quad IPv4 address without DNS.
     *
     * @throws IllegalArgumentException if it is not a dotted-quad IPv4 address
     */
    public static Inet4Address parseAddress(String text) {
        return fromInt(parseAddress(text, text));
    }

    private static int parseAddress(String text, String whole) {
        InetAddress a;
        try {
            a = InetAddresses.forString(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("invalid IPv4 address in " + whole, e);
        }
        checkArgument(a instanceof Inet4Address, "not an IPv4 address: %s", whole);
        return toInt((Inet4Address) a);
    }

    private static int parseLength(String text, String whole) {
        checkArgument(!text.isEmpty() && text.length() <= 2 && text.chars().allMatch(Character::isDigit),
                "invalid prefix length in %s", whole);
        int len = Integer.parseInt(text);
        checkArgument(len <= 32, "IPv4 prefix length must be 0..32: %s", whole);
        return len;
    }
}
