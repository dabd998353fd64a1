/** Tests of the udp data plane: encapsulator, peer table, forwarder over loopback, backend with test doubles. */
package io.overlay4j.udp;
