package io.overlay4j.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.OverlayException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Bad builder values are one exception type, naming the option (no etcd needed). */
class EtcdSubnetAllocatorBuilderTest {
    @Test
    void badValuesAreIllegalArgumentsNamingTheOption() {
        Map<String, Runnable> bad = Map.of(
                "prefix", () -> EtcdSubnetAllocator.builder().prefix("coreos.com/network"),
                "endpoints", () -> EtcdSubnetAllocator.builder().endpoints("127.0.0.1:2379"),
                "endpoints ", () -> EtcdSubnetAllocator.builder().endpoints(List.of()),
                "endpoints  ", () -> EtcdSubnetAllocator.builder().endpoints("http://127.0.0.1"),
                "leaseTtl", () -> EtcdSubnetAllocator.builder().leaseTtl(Duration.ofMillis(500)),
                "requestTimeout", () -> EtcdSubnetAllocator.builder().requestTimeout(Duration.ZERO),
                "threadFactory", () -> EtcdSubnetAllocator.builder().threadFactory(null));
        for (Map.Entry<String, Runnable> b : bad.entrySet()) {
            OverlayException e = assertThrows(OverlayException.class, b.getValue()::run, b.getKey());
            assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, e.kind());
            assertTrue(e.getMessage().startsWith("EtcdSubnetAllocator: " + b.getKey().trim()), e.getMessage());
        }
    }
}
