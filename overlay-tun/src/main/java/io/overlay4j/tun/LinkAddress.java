package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import java.net.Inet4Address;

/**
 * An IPv4 address assigned to a device, host bits kept ({@code 10.168.0.2/24 dev eth0}).
 *
 * @param device       the device name
 * @param index        the device's interface index
 * @param address      the local address
 * @param prefixLength its prefix length, 0..32
 */
public record LinkAddress(String device, int index, Inet4Address address, int prefixLength) {

    public LinkAddress {
        requireNonNull(device, "device");
        requireNonNull(address, "address");
    }

    @Override
    public String toString() {
        return address.getHostAddress() + "/" + prefixLength + " dev " + device;
    }
}
