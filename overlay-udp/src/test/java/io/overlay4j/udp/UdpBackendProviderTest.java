package io.overlay4j.udp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.overlay4j.Backends;
import org.junit.jupiter.api.Test;

/** overlay-udp registers the {@code udp} type with the backend registry. */
class UdpBackendProviderTest {

    @Test
    void theRegistryMakesAUdpBackendForTypeUdp() {
        assertInstanceOf(UdpBackend.class, Backends.create("udp"));
        assertEquals("udp", Backends.create("UDP").type());
    }
}
