/** Test doubles for the data plane, published in overlay-udp's test-jar for benchmarks and other modules' tests. */
package io.overlay4j.udp.testing;
