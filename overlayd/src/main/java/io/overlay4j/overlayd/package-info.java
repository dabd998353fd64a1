/**
 * {@code overlayd}: a drop-in for flanneld in etcd mode, built on overlay4j. It takes flanneld's flags and
 * {@code FLANNELD_*} variables, picks the underlay interface as flanneld does, runs the backend the network's config
 * names, installs flanneld's masquerade and forward rules, writes {@code subnet.env}, tells systemd when it is ready
 * and serves flanneld's {@code /healthz} and {@code /readyz}. The entry point is
 * {@link io.overlay4j.overlayd.Overlayd}; everything else here is the daemon's own and not an API.
 */
package io.overlay4j.overlayd;
