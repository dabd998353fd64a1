/**
 * Internal implementation details of overlay4j's API module; not part of the public API and may change.
 *
 * <p>One documented export: {@link io.overlay4j.internal.Json} is read by {@code overlay-udp}'s
 * {@code VxlanEncapsulator} to parse a lease's {@code BackendData} the way flannel's Go decoder does (keys matched
 * case-insensitively); change both together.
 */
package io.overlay4j.internal;
