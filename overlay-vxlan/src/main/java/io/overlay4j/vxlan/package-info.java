/**
 * flannel's {@code vxlan} backend for overlay4j: {@link io.overlay4j.vxlan.VxlanBackend} either programs the kernel's
 * {@code flannel.<VNI>} device, neighbours, FDB entries and routes as flanneld does, or runs the same VXLAN in
 * userspace on a TUN device (overlay-udp's {@code Forwarder} with its {@code VxlanEncapsulator}), chosen per node;
 * {@link io.overlay4j.vxlan.VxlanConfig} reads the network config's vxlan options, and overlay-udp's
 * {@code VxlanLeaseData} the leases' {@code BackendData} for both data planes. Putting this module on the class path
 * makes networks whose config says {@code "Backend":{"Type":"vxlan"}} runnable by {@code OverlayNode}.
 */
package io.overlay4j.vxlan;
