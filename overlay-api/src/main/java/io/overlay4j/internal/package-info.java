/** Internal implementation details of overlay4j's API module; not part of the public API and may change. */
package io.overlay4j.internal;
