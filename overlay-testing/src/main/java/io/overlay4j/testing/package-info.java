/**
 * overlay4j's testing kit: what a test needs from the machine ({@link io.overlay4j.testing.Requirements}), abstract
 * contract tests that every implementation of an overlay4j contract passes
 * ({@link io.overlay4j.testing.AbstractSubnetAllocatorContractTest},
 * {@link io.overlay4j.testing.AbstractTunDeviceContractTest},
 * {@link io.overlay4j.testing.AbstractRouteProgrammerContractTest},
 * {@link io.overlay4j.testing.AbstractEncapsulatorContractTest}), and an in-memory
 * {@link io.overlay4j.RouteProgrammer} ({@link io.overlay4j.testing.InMemoryRouteProgrammer}). The JUnit extensions
 * are in {@link io.overlay4j.tun.testing} (network namespaces) and {@link io.overlay4j.etcd.testing} (a real etcd),
 * the in-memory TUN device and packet builders in {@link io.overlay4j.udp.testing}.
 *
 * <p>This artifact depends on overlay-api and overlay-tun (the namespace extension hands out overlay-tun's
 * {@code NetworkNamespace}), so neither of them can use it in its own tests without a dependency cycle. Their tests
 * that need the kit therefore run here, in this module's {@code src/test}: the contract tests against
 * {@code LocalSubnetAllocator}, {@code LinuxTunDevice} and {@code NetlinkRouteProgrammer}, and overlay-tun's kernel
 * tests. Every other module uses the kit at test scope.
 */
package io.overlay4j.testing;
