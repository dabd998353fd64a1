/** Runnable examples: the flannel walk-through demo and a minimal embedding. */
package io.overlay4j.examples;
