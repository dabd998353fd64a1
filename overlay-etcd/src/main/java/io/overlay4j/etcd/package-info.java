/** The etcd-backed {@code SubnetAllocator}: flannel's key layout and lease JSON in etcd v3 (coming with issue 3). */
package io.overlay4j.etcd;
