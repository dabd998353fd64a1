package io.overlay4j.testing;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.SubnetAllocator;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.io.TempDir;

/** The allocator contract against overlay-api's file-backed {@link LocalSubnetAllocator}: one file is one store. */
class LocalSubnetAllocatorContractTest extends AbstractSubnetAllocatorContractTest {
    @TempDir
    Path dir;

    private Path file;
    private Duration ttl;

    @Override
    protected SubnetAllocator newStore(NetworkConfig config, Duration leaseTtl) {
        file = dir.resolve("net/leases.json");
        ttl = leaseTtl;
        return open(config);
    }

    @Override
    protected SubnetAllocator connect() {
        return open(null);
    }

    @Override
    protected void reserve(Ipv4Prefix subnet, LeaseAttributes attrs) {
        try (LocalSubnetAllocator a = open(null)) {
            a.reserve(subnet, attrs);
        }
    }

    private LocalSubnetAllocator open(NetworkConfig config) {
        return LocalSubnetAllocator.builder().file(file).network(config).leaseTtl(ttl)
                .pollInterval(Duration.ofMillis(20)).build();
    }
}
