/**
 * Hostile datagrams as a tool: {@link io.overlay4j.bench.fuzz.HostileDatagrams} makes them (every kind of broken,
 * forged and misdirected datagram an overlay4j node's UDP port can receive, each with the verdict the node must
 * reach), {@link io.overlay4j.bench.fuzz.DatagramFuzzer} sends them at a node from the command line or from a test,
 * and {@link io.overlay4j.bench.fuzz.DatagramCapture} listens where none of them may arrive.
 */
package io.overlay4j.bench.fuzz;
