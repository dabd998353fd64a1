package io.overlay4j;

/**
 * The service-provider interface through which {@link Backends} finds a {@link Backend} for a network's
 * {@code Backend.Type}. A module that implements a backend lists its provider in
 * {@code META-INF/services/io.overlay4j.BackendProvider} (and {@code provides} it in its module descriptor), so that
 * putting the module on the class path is all it takes for {@link OverlayNode} to run networks of that type.
 */
public interface BackendProvider {

    /** The flannel backend type this provider makes, lower case: {@code udp}, {@code vxlan}, {@code host-gw}. */
    String type();

    /**
     * A backend with its default options. Per-network settings ({@code Port}, {@code VNI}, ...) are read from the
     * {@link NetworkConfig} when the backend registers, so a default-built backend runs any network of its type.
     */
    Backend create();
}
