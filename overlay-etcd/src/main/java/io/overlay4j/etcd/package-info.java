/**
 * The etcd-backed {@code SubnetAllocator}, {@link io.overlay4j.etcd.EtcdSubnetAllocator}: flannel's key layout and
 * lease JSON in etcd v3, so overlay4j nodes and upstream flanneld nodes can share one network.
 *
 * <p>Only the allocator is public. Behind it, package-private: {@code EtcdClient} (the jetcd client and the few
 * operations flannel's layout needs, all started from the allocator's own thread), {@code LeaseCodec} (keys and values,
 * and which of them may be routed) and {@code EtcdLeaseWatch} (snapshot, long-lived watch, resync).
 */
package io.overlay4j.etcd;
