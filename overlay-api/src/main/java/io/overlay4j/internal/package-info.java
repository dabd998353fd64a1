/**
 * Internal implementation details of overlay4j's API module; not part of the public API and may change.
 *
 * <p>One documented export, to overlay4j's own modules only: {@link io.overlay4j.internal.Json}, with which
 * {@code overlay-udp}'s {@code VxlanLeaseData} reads a vxlan lease's {@code BackendData} (for the kernel backend and
 * the userspace {@code VxlanEncapsulator} alike) and {@code overlay-vxlan} the vxlan options, the way flannel's Go
 * decoder does (keys matched case-insensitively); change them together. And what the backends' networks share:
 * {@link io.overlay4j.internal.AbstractNetwork} (lease, MTU, lock, closed flag), {@link io.overlay4j.internal.Cleanup}
 * (tear-downs that keep going past a failure) and {@link io.overlay4j.internal.WarnOnce}. Applications must not use
 * this package.
 */
package io.overlay4j.internal;
