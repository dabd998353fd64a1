package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class RateLimitedErrorLoggerTest {
    @Test
    void logsTheFirstErrorAndCountsTheRestWithinTheInterval() {
        RateLimitedErrorLogger logger = new RateLimitedErrorLogger(LoggerFactory.getLogger(getClass()), "test", 1,
                TimeUnit.HOURS);
        for (int i = 0; i < 5; i++) {
            logger.accept(new java.io.IOException("expected test error " + i));
        }
        assertEquals(4, logger.suppressed());
    }

    @Test
    void aZeroIntervalLogsEverything() {
        RateLimitedErrorLogger logger = new RateLimitedErrorLogger(LoggerFactory.getLogger(getClass()), "test", 0,
                TimeUnit.SECONDS);
        for (int i = 0; i < 3; i++) {
            logger.accept(new java.io.IOException("expected test error " + i));
        }
        assertEquals(0, logger.suppressed());
    }
}
