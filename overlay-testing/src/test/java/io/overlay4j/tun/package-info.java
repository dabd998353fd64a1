/** Kernel tests of the TUN device, rtnetlink programmer and network namespaces; they need root. */
package io.overlay4j.tun;
