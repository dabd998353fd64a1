package io.overlay4j.hostgw;

import io.overlay4j.Backend;
import io.overlay4j.BackendProvider;

/**
 * Registers flannel's {@code host-gw} backend with {@link io.overlay4j.Backends}: {@link HostGwBackend} with
 * defaults.
 */
public final class HostGwBackendProvider implements BackendProvider {

    /** Used by {@link java.util.ServiceLoader}. */
    public HostGwBackendProvider() {
    }

    @Override
    public String type() {
        return HostGwBackend.TYPE;
    }

    @Override
    public Backend create() {
        return HostGwBackend.builder().build();
    }
}
