/** The userspace data plane and flannel's {@code udp} backend. */
package io.overlay4j.udp;
