/**
 * The etcd-backed {@code SubnetAllocator}, {@link io.overlay4j.etcd.EtcdSubnetAllocator}: flannel's key layout and
 * lease JSON in etcd v3, so overlay4j nodes and upstream flanneld nodes can share one network.
 */
package io.overlay4j.etcd;
