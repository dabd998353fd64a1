/**
 * Linux kernel bindings: {@link io.overlay4j.tun.LinuxTunDevice} (TUN devices), {@link
 * io.overlay4j.tun.NetlinkRouteProgrammer} (rtnetlink), {@link io.overlay4j.tun.NetworkNamespace} and {@link
 * io.overlay4j.tun.UdpSocket} (UDP with GSO/GRO for the data plane). Requires CAP_NET_ADMIN.
 */
package io.overlay4j.tun;
