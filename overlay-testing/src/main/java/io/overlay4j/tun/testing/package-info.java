/**
 * Test fixtures for kernel networking tests: {@link io.overlay4j.tun.testing.TestNamespaces} creates uniquely named
 * network namespaces and removes them after each test; {@link io.overlay4j.tun.testing.TestUnderlay} puts hosts in
 * such namespaces on one L2 switch; {@link io.overlay4j.tun.testing.TestNodes} runs overlay nodes on those hosts.
 */
package io.overlay4j.tun.testing;
