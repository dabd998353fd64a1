/**
 * Internal use only: header flyweights, checksums, ICMP replies and the forwarder's loops. Nothing here is API; it
 * may change in any release without notice.
 */
package io.overlay4j.udp.internal;
