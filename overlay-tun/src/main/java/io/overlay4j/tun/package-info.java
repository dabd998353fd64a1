/**
 * Linux kernel bindings: {@link io.overlay4j.tun.LinuxTunDevice} (TUN devices), {@link
 * io.overlay4j.tun.NetlinkRouteProgrammer} (rtnetlink: links, addresses, routes, vxlan devices, neighbours, FDB
 * entries), {@link io.overlay4j.tun.NetlinkMonitor} (rtnetlink notifications), {@link
 * io.overlay4j.tun.NetworkNamespace} and {@link io.overlay4j.tun.UdpSocket} (UDP with GSO/GRO for the data plane).
 * Requires CAP_NET_ADMIN.
 */
package io.overlay4j.tun;
