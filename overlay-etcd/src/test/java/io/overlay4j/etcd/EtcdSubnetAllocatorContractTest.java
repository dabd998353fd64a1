package io.overlay4j.etcd;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.NetworkConfig;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.testing.AbstractSubnetAllocatorContractTest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The shared allocator contract against a real etcd; every test works under its own key prefix. */
class EtcdSubnetAllocatorContractTest extends AbstractSubnetAllocatorContractTest {
    @RegisterExtension
    static final EtcdServerExtension ETCD = new EtcdServerExtension();
    private static final AtomicInteger PREFIXES = new AtomicInteger();
    private static Client raw;

    private String prefix;
    private Duration ttl;

    @BeforeAll
    static void rawClient() {
        raw = Client.builder().endpoints(ETCD.endpoint()).build();
    }

    @AfterAll
    static void closeRaw() {
        if (raw != null) {
            raw.close();
        }
    }

    @Override
    protected SubnetAllocator newStore(NetworkConfig config, Duration leaseTtl) {
        prefix = "/contract-" + PREFIXES.incrementAndGet() + "/coreos.com/network";
        ttl = leaseTtl;
        put(prefix + "/config", config.toJson());
        return connect();
    }

    @Override
    protected SubnetAllocator connect() {
        return EtcdSubnetAllocator.builder().endpoints(ETCD.endpoint()).prefix(prefix).leaseTtl(ttl).build();
    }

    @Override
    protected void reserve(Ipv4Prefix subnet, LeaseAttributes attrs) {
        put(prefix + "/subnets/" + subnet.toSubnetKey(), attrs.toJson());
    }

    private static void put(String key, String value) {
        try {
            raw.getKVClient().put(ByteSequence.from(key, StandardCharsets.UTF_8),
                    ByteSequence.from(value, StandardCharsets.UTF_8)).get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("cannot write " + key, e);
        }
    }
}
