package io.overlay4j;

import static java.util.Objects.requireNonNull;

import java.util.Collections;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.TreeMap;

/**
 * The registry of backends: maps a network config's {@code Backend.Type} to a {@link Backend}, through the
 * {@link BackendProvider}s on the class path ({@code overlay-udp} brings {@code udp}, {@code overlay-vxlan}
 * {@code vxlan}, {@code overlay-hostgw} {@code host-gw}).
 *
 * <pre>{@code
 * Backend backend = Backends.create(config.backendType());   // what OverlayNode does when given no backend
 * }</pre>
 *
 * <p>Lookups are case-insensitive, as flannel's. The providers are loaded once, with the class loader of this class.
 */
public final class Backends {
    /** Every type flannel ships; those overlay4j does not implement are named as such in the error. */
    private static final Map<String, String> FLANNEL_TYPES = Map.of(
            "udp", "io.overlay4j:overlay-udp",
            "vxlan", "io.overlay4j:overlay-vxlan",
            "host-gw", "io.overlay4j:overlay-hostgw",
            "ipip", "", "wireguard", "", "ipsec", "", "alloc", "", "extension", "", "tencent-vpc", "");

    private static volatile Map<String, BackendProvider> providers;

    private Backends() {
    }

    /**
     * A new backend, with default options, for a flannel backend type.
     *
     * @param type the config's {@code Backend.Type}, any case
     * @throws OverlayException {@code CONFIG_INVALID} naming the type: {@code unknown backend type: <type>} (flannel's
     *                          words) for a type no one defines, or which module to add for a type implemented in a
     *                          module that is not on the class path, or that overlay4j does not implement it
     */
    public static Backend create(String type) {
        requireNonNull(type, "type");
        String key = type.toLowerCase(Locale.ROOT);
        BackendProvider provider = loaded().get(key);
        if (provider != null) {
            return provider.create();
        }
        String artifact = FLANNEL_TYPES.get(key);
        String message;
        if (artifact == null) {
            message = "unknown backend type: " + type;
        } else if (artifact.isEmpty()) {
            message = "backend type '" + key + "' is not supported by overlay4j";
        } else {
            message = "backend type '" + key + "' needs " + artifact + " on the class path";
        }
        throw new OverlayException(OverlayException.Kind.CONFIG_INVALID,
                message + " (available: " + String.join(", ", types()) + ")");
    }

    /** The types the class path provides, sorted. */
    public static Set<String> types() {
        return loaded().keySet();
    }

    private static Map<String, BackendProvider> loaded() {
        Map<String, BackendProvider> p = providers;
        if (p == null) {
            synchronized (Backends.class) {
                p = providers;
                if (p == null) {
                    p = load();
                    providers = p;
                }
            }
        }
        return p;
    }

    private static Map<String, BackendProvider> load() {
        TreeMap<String, BackendProvider> found = new TreeMap<>();
        try {
            for (BackendProvider provider : ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader())) {
                String type = provider.type().toLowerCase(Locale.ROOT);
                BackendProvider previous = found.putIfAbsent(type, provider);
                if (previous != null && previous.getClass() != provider.getClass()) {
                    throw new OverlayException(OverlayException.Kind.CONFIG_INVALID, "two providers of backend type '"
                            + type + "': " + previous.getClass().getName() + " and " + provider.getClass().getName());
                }
            }
        } catch (ServiceConfigurationError e) {
            throw new OverlayException(OverlayException.Kind.CONFIG_INVALID,
                    "a backend provider cannot be loaded: " + e.getMessage(), e);
        }
        return Collections.unmodifiableSortedMap(found);
    }
}
