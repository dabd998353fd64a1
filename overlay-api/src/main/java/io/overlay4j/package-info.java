/**
 * overlay4j: build flannel-compatible container overlay networks from Java.
 *
 * <p>This package holds the public contracts ({@link io.overlay4j.SubnetAllocator}, {@link io.overlay4j.TunDevice},
 * {@link io.overlay4j.Encapsulator}, {@link io.overlay4j.RouteProgrammer}, the {@link io.overlay4j.Backend} SPI),
 * immutable value types ({@link io.overlay4j.Ipv4Prefix}, {@link io.overlay4j.NetworkConfig},
 * {@link io.overlay4j.Lease}) and the control plane {@link io.overlay4j.OverlayNode}. Implementations live in the
 * {@code overlay-tun}, {@code overlay-udp} and {@code overlay-etcd} modules; packages named {@code internal} are not
 * part of the API.
 */
package io.overlay4j;
