/** Test support for the etcd allocator: a JUnit 5 extension running a real etcd server or cluster. */
package io.overlay4j.etcd.testing;
