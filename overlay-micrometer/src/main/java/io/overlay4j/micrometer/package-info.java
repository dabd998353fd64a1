/**
 * Micrometer meters for overlay4j nodes: {@link io.overlay4j.micrometer.OverlayNodeMetrics} binds an
 * {@link io.overlay4j.OverlayNode}'s traffic, drops, per-peer counters, lease, store reachability, state and offloads
 * to any {@link io.micrometer.core.instrument.MeterRegistry}.
 */
package io.overlay4j.micrometer;
