package io.overlay4j;

import java.nio.file.Path;

/**
 * Run in a separate JVM by {@link LocalSubnetAllocatorTest}: acquires leases for {@code count} PublicIPs
 * {@code 192.168.<hostByte>.1..count} on the lease file given, printing each subnet on its own line.
 */
public final class LocalAllocatorChildProcess {
    private LocalAllocatorChildProcess() {
    }

    /** Arguments: lease file, host byte, count. */
    public static void main(String[] args) {
        try (LocalSubnetAllocator a = LocalSubnetAllocator.builder().file(Path.of(args[0])).build()) {
            int count = Integer.parseInt(args[2]);
            for (int i = 1; i <= count; i++) {
                Lease l = a.acquire(LeaseAttributes.udp(Ipv4Prefix.parseAddress("192.168." + args[1] + "." + i)),
                        null);
                System.out.println(l.subnet());
            }
        }
    }
}
