/**
 * Scale benchmarks with real parts: {@link io.overlay4j.bench.scale.ThousandHosts} (a node learning, programming and
 * following a thousand leases in a real etcd, for each backend).
 */
package io.overlay4j.bench.scale;
