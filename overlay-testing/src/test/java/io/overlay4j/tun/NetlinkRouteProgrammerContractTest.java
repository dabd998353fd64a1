package io.overlay4j.tun;

import io.overlay4j.RouteProgrammer;
import io.overlay4j.testing.AbstractRouteProgrammerContractTest;
import io.overlay4j.tun.testing.TestNamespaces;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The route programmer contract against the kernel: {@link NetlinkRouteProgrammer} in a fresh network namespace. */
class NetlinkRouteProgrammerContractTest extends AbstractRouteProgrammerContractTest {
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @Override
    protected RouteProgrammer newProgrammer() throws Exception {
        NetworkNamespace ns = namespaces.create();
        namespaces.ip(ns, "link", "add", DEVICE, "type", "veth", "peer", "name", OTHER);
        return ns.call(NetlinkRouteProgrammer::open);
    }
}
