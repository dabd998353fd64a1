/**
 * Linux kernel bindings: {@link io.overlay4j.tun.LinuxTunDevice} (TUN devices), {@link
 * io.overlay4j.tun.NetlinkRouteProgrammer} (rtnetlink) and {@link io.overlay4j.tun.NetworkNamespace}. Requires
 * CAP_NET_ADMIN.
 */
package io.overlay4j.tun;
