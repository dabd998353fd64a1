/**
 * Internal use only: header flyweights, checksums, ICMP replies and the forwarder's loops, and
 * {@link io.overlay4j.udp.internal.ForwardingNetwork}, which overlay-vxlan's userspace data plane shares (the one
 * qualified export). Nothing here is API; it may change in any release without notice.
 */
package io.overlay4j.udp.internal;
