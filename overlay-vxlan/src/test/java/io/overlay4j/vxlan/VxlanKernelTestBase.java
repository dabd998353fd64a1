package io.overlay4j.vxlan;

import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.tun.testing.TestNodes;
import io.overlay4j.tun.testing.TestUnderlay;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The set-up of the vxlan kernel tests: two hosts on one L2 switch in namespaces of their own, with
 * {@link TestNodes} on them and {@link VxlanHosts} reading their state; all removed after each test.
 */
abstract class VxlanKernelTestBase {
    static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}";
    static final String DEVICE = VxlanHosts.DEVICE;

    @RegisterExtension
    final TestNamespaces namespaces;

    @TempDir
    Path dir;

    TestUnderlay lan;
    TestNodes nodes;
    VxlanHosts hosts;

    private final String[] binaries;

    /**
     * @param prefix   the namespaces' name prefix
     * @param binaries what the test runs besides the backend (checked before each test)
     */
    VxlanKernelTestBase(String prefix, String... binaries) {
        this.namespaces = new TestNamespaces(prefix);
        this.binaries = binaries;
    }

    @BeforeEach
    void setUpHosts() throws IOException {
        nodes = TestNodes.create(namespaces, 2, dir, binaries);
        lan = nodes.lan();
        hosts = new VxlanHosts(nodes);
    }

    @AfterEach
    void closeNodes() {
        if (nodes != null) {
            nodes.close();
        }
    }

    /** A kernel data plane that removes its device on close and retries fast (200 ms to 2 s). */
    static VxlanBackend kernel() {
        return VxlanBackend.builder().cleanUpOnClose(true).retryBackoff(Duration.ofMillis(200), Duration.ofSeconds(2))
                .build();
    }
}
