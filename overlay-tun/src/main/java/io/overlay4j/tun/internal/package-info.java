/**
 * Internal use only: JNA bindings to libc, kernel constants and buffer helpers behind {@code io.overlay4j.tun}, and
 * {@link io.overlay4j.tun.internal.KernelWatch}, shared by the kernel backends. Not part of the public API; may change
 * without notice.
 */
package io.overlay4j.tun.internal;
