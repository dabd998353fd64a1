package io.overlay4j.vxlan;

import io.overlay4j.Backend;
import io.overlay4j.BackendProvider;

/** Registers flannel's {@code vxlan} backend with {@link io.overlay4j.Backends}: {@link VxlanBackend} with defaults. */
public final class VxlanBackendProvider implements BackendProvider {

    /** Used by {@link java.util.ServiceLoader}. */
    public VxlanBackendProvider() {
    }

    @Override
    public String type() {
        return VxlanBackend.TYPE;
    }

    @Override
    public Backend create() {
        return VxlanBackend.builder().build();
    }
}
