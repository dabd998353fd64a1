/**
 * Internal use only: helpers of {@code io.overlay4j.etcd}. Not API; may change in any release.
 */
package io.overlay4j.etcd.internal;
