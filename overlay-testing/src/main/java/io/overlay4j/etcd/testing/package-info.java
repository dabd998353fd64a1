/**
 * Test support for etcd-backed code: {@link io.overlay4j.etcd.testing.EtcdServerExtension}, a JUnit 5 extension that
 * runs a real etcd server, or a cluster of them, on loopback (Debian package {@code etcd-server}). It needs only the
 * {@code etcd} binary and the JDK, not overlay-etcd.
 */
package io.overlay4j.etcd.testing;
