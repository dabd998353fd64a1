/**
 * Test fixtures for kernel networking tests: {@link io.overlay4j.tun.testing.TestNamespaces} creates uniquely named
 * network namespaces and removes them after each test.
 */
package io.overlay4j.tun.testing;
