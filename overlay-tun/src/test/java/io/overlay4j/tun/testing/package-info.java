/**
 * Test fixtures for kernel networking tests, published in overlay-tun's test-jar: {@link
 * io.overlay4j.tun.testing.TestNamespaces} creates uniquely named network namespaces and removes them after each test.
 */
package io.overlay4j.tun.testing;
