/**
 * flannel's {@code vxlan} backend for overlay4j: {@link io.overlay4j.vxlan.VxlanBackend} programs the kernel's
 * {@code flannel.<VNI>} device, neighbours, FDB entries and routes as flanneld does; {@link
 * io.overlay4j.vxlan.VxlanConfig} reads the network config's vxlan options and {@link
 * io.overlay4j.vxlan.VxlanLeaseData} the leases' {@code BackendData}. Putting this module on the class path makes
 * networks whose config says {@code "Backend":{"Type":"vxlan"}} runnable by {@code OverlayNode}.
 */
package io.overlay4j.vxlan;
