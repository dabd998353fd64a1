/**
 * Test doubles and packet builders for the data plane: {@link io.overlay4j.udp.testing.InMemoryTunDevice}, a
 * {@link io.overlay4j.TunDevice} without a kernel, and {@link io.overlay4j.udp.testing.Packets} and
 * {@link io.overlay4j.udp.testing.TcpPackets}, which build and check IPv4, UDP and TCP packets independently of the
 * production code. Used by tests and by the benchmarks.
 */
package io.overlay4j.udp.testing;
