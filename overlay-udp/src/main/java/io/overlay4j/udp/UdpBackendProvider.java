package io.overlay4j.udp;

import io.overlay4j.Backend;
import io.overlay4j.BackendProvider;

/** Registers flannel's {@code udp} backend with {@link io.overlay4j.Backends}: {@link UdpBackend} with defaults. */
public final class UdpBackendProvider implements BackendProvider {

    /** Used by {@link java.util.ServiceLoader}. */
    public UdpBackendProvider() {
    }

    @Override
    public String type() {
        return UdpBackend.TYPE;
    }

    @Override
    public Backend create() {
        return UdpBackend.builder().build();
    }
}
