/** Tests of the internal header flyweights, checksums and ICMP replies. */
package io.overlay4j.udp.internal;
