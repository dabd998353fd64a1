/**
 * Micrometer meters for overlay4j nodes: {@code OverlayNodeMetrics} binds a node's traffic, drops, per-peer counters,
 * lease, store reachability, state and offloads to any Micrometer {@code MeterRegistry}.
 */
// "requires-automatic", "requires-transitive-automatic": micrometer-core has only an Automatic-Module-Name, and its
// MeterBinder and MeterRegistry are part of this module's API.
@SuppressWarnings({"requires-automatic", "requires-transitive-automatic"})
module io.overlay4j.micrometer {
    requires transitive io.overlay4j;
    requires transitive micrometer.core;
    requires org.slf4j;

    exports io.overlay4j.micrometer;
}
