/**
 * Internal implementation details of overlay4j's API module; not part of the public API and may change.
 *
 * <p>overlay4j's own modules use two of them, and only these: {@link io.overlay4j.internal.Subnets} (overlay-etcd) and
 * {@link io.overlay4j.internal.Json} (overlay-vxlan, to read the vxlan options and leases' {@code BackendData} with
 * Go's decoding rules). Applications must not.
 */
package io.overlay4j.internal;
