/** JMH benchmarks of the data plane's hot path and buffer pooling. */
package io.overlay4j.bench;
