package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The backend registry: ServiceLoader lookup by the config's type, and the errors for types it cannot run. */
class BackendsTest {
    static final String TYPE = "o4j-test";

    /** Registered in this module's test resources. */
    public static final class TestProvider implements BackendProvider {
        @Override
        public String type() {
            return TYPE;
        }

        @Override
        public Backend create() {
            return new OverlayNodeTest.RecordingBackend(TYPE);
        }
    }

    @TempDir
    Path dir;

    @Test
    void findsAProviderOnTheClassPathCaseInsensitively() {
        assertTrue(Backends.types().contains(TYPE), Backends.types().toString());
        assertInstanceOf(OverlayNodeTest.RecordingBackend.class, Backends.create("O4J-Test"));
    }

    @Test
    void anUnknownTypeIsFlannelsError() {
        OverlayException e = assertThrows(OverlayException.class, () -> Backends.create("carrier-pigeon"));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(e.getMessage().startsWith("unknown backend type: carrier-pigeon (available: "), e.getMessage());
        e = assertThrows(OverlayException.class, () -> Backends.create(""));
        assertTrue(e.getMessage().startsWith("unknown backend type:  (available"), e.getMessage());
    }

    @Test
    void aFlannelTypeWithoutItsModuleNamesTheModule() {
        // overlay-api's own tests have no backend module on the class path.
        OverlayException e = assertThrows(OverlayException.class, () -> Backends.create("vxlan"));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(e.getMessage().contains("needs io.overlay4j:overlay-vxlan on the class path"), e.getMessage());
    }

    @Test
    void aFlannelTypeOverlay4jDoesNotImplementSaysSo() {
        OverlayException e = assertThrows(OverlayException.class, () -> Backends.create("WireGuard"));
        assertTrue(e.getMessage().startsWith("backend type 'wireguard' is not supported by overlay4j"),
                e.getMessage());
    }

    @Test
    void aNodeWithoutABackendRunsTheOneTheConfigNames() throws Exception {
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"O4J-test\"}}");
        try (LocalSubnetAllocator alloc = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(config).leaseTtl(Duration.ofHours(1)).build();
             OverlayNode node = OverlayNode.builder().allocator(alloc).underlayInterface("lo")
                     .publicAddress(Ipv4Prefix.parseAddress("192.0.2.2")).subnetFile(dir.resolve("s.env"))
                     .build().start()) {
            assertEquals(1, alloc.leases().size());
            assertEquals(node.lease().subnet(), alloc.leases().get(0).subnet());
        }
    }

    @Test
    void aNodeWithoutABackendRefusesAnUnknownTypeBeforeLeasing() throws Exception {
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"nope\"}}");
        try (LocalSubnetAllocator alloc = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(config).leaseTtl(Duration.ofHours(1)).build()) {
            OverlayNode node = OverlayNode.builder().allocator(alloc).underlayInterface("lo")
                    .publicAddress(Ipv4Prefix.parseAddress("192.0.2.2")).subnetFile(dir.resolve("s.env")).build();
            OverlayException e = assertThrows(OverlayException.class, node::start);
            assertTrue(e.getMessage().startsWith("unknown backend type: nope"), e.getMessage());
            assertTrue(alloc.leases().isEmpty());
        }
    }
}
