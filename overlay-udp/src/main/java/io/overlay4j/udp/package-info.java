/**
 * The userspace data plane and flannel's {@code udp} backend.
 *
 * <ul>
 *   <li>{@link io.overlay4j.udp.UdpBackend} — the {@link io.overlay4j.Backend} a node registers: TUN device, address,
 *   route, data socket and forwarder, wire-compatible with flanneld's udp backend.</li>
 *   <li>{@link io.overlay4j.udp.Forwarder} — the two data-plane threads (TUN → UDP, UDP → TUN), garbage-free per
 *   packet, every drop counted by reason.</li>
 *   <li>{@link io.overlay4j.udp.FlannelUdpEncapsulator} — flannel's wire format: the UDP payload is the inner IPv4
 *   packet, TTL decremented on each leg.</li>
 *   <li>{@link io.overlay4j.udp.PeerTable} / {@link io.overlay4j.udp.Peer} — immutable, lock-free destination → peer
 *   lookup, swapped copy-on-write.</li>
 * </ul>
 *
 * <p>Buffer ownership: the forwarder's threads each own one pooled direct buffer for their lifetime and release it
 * when they end; no buffer crosses a public API.
 */
package io.overlay4j.udp;
