/**
 * The userspace data plane and flannel's {@code udp} backend.
 *
 * <ul>
 *   <li>{@link io.overlay4j.udp.UdpBackend} — the {@link io.overlay4j.Backend} a node registers: TUN device, address,
 *   route, data socket and forwarder, wire-compatible with flanneld's udp backend; offloads on by default.</li>
 *   <li>{@link io.overlay4j.udp.Forwarder} — the one data-plane pipeline (TUN → UDP, UDP → TUN) for any
 *   {@link io.overlay4j.Encapsulator}, with TUN offloads, UDP GSO and GRO as the devices grant them; ingress
 *   admission; garbage-free per packet, every drop counted by reason. Other backends (userspace VXLAN) build one
 *   with their own encapsulator and port.</li>
 *   <li>{@link io.overlay4j.udp.FlannelUdpEncapsulator} — flannel's wire format: the UDP payload is the inner IPv4
 *   packet, TTL decremented on each leg.</li>
 *   <li>{@link io.overlay4j.udp.VxlanEncapsulator} — RFC 7348 as the kernel's vxlan device and flannel's vxlan
 *   backend use it: VXLAN header and inner Ethernet header per peer, UDP 8472.</li>
 *   <li>{@link io.overlay4j.udp.PeerTable} / {@link io.overlay4j.udp.Peer} — immutable, lock-free destination → peer
 *   and sender → lease lookups, swapped copy-on-write; per-peer encapsulation state computed once.</li>
 * </ul>
 *
 * <p>Buffers: each half of the pipeline allocates its direct buffers once, when the forwarder is built; no buffer
 * crosses a public API and nothing is allocated per packet.
 */
package io.overlay4j.udp;
