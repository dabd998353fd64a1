/**
 * Internal implementation details of overlay4j's API module; not part of the public API and may change.
 *
 * <p>One of them is shared with overlay4j's own modules, and only with them: {@link io.overlay4j.internal.Json}
 * (overlay-vxlan reads the vxlan options and the leases' {@code BackendData} with it, by Go's decoding rules).
 * Applications must not use this package.
 */
package io.overlay4j.internal;
