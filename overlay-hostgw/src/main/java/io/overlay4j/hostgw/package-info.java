/**
 * flannel's {@code host-gw} backend for overlay4j: {@link io.overlay4j.hostgw.HostGwBackend} routes each peer's subnet
 * via the peer's address on the shared L2 network, as flanneld does. Putting this module on the class path makes
 * networks whose config says {@code "Backend":{"Type":"host-gw"}} runnable by {@code OverlayNode}.
 */
package io.overlay4j.hostgw;
