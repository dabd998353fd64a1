package io.overlay4j.testing;

import io.overlay4j.RouteProgrammer;

/** The route programmer contract against {@link InMemoryRouteProgrammer}. */
class InMemoryRouteProgrammerContractTest extends AbstractRouteProgrammerContractTest {
    @Override
    protected RouteProgrammer newProgrammer() {
        return new InMemoryRouteProgrammer().addDevice(DEVICE).addDevice(OTHER);
    }
}
