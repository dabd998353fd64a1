package io.overlay4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {

    @Test
    void parsesAllTypes() {
        Map<String, Object> m = Json.parseObject(
                " {\"s\":\"a\\\"b\\u00e9\\n\",\"i\":-12,\"d\":1.5e2,\"t\":true,\"f\":false,\"n\":null,\"a\":[1,{}]} ");
        assertEquals("a\"b\u00e9\n", m.get("s"));
        assertEquals(-12L, m.get("i"));
        assertEquals(new BigDecimal("1.5e2"), m.get("d"));
        assertEquals(Boolean.TRUE, m.get("t"));
        assertEquals(Boolean.FALSE, m.get("f"));
        assertTrue(m.containsKey("n"));
        assertNull(m.get("n"));
        assertEquals(List.of(1L, Map.of()), m.get("a"));
        assertEquals(List.of("s", "i", "d", "t", "f", "n", "a"), List.copyOf(m.keySet()));
    }

    @Test
    void bigIntegersBecomeBigDecimal() {
        assertEquals(new BigDecimal("12345678901234567890"), Json.parse("12345678901234567890"));
        assertEquals(Long.MAX_VALUE, Json.parse(Long.toString(Long.MAX_VALUE)));
    }

    @Test
    void rejectsInvalidJsonWithOffset() {
        for (String bad : new String[] {"", "{", "{\"a\":1,}", "[1,]", "01", "1.", "-", "+1", "'a'", "{a:1}",
            "\"\\x\"", "\"a", "tru", "nul", "{\"a\" 1}", "1 2", "\"\u0001\"", "[1 2]", "NaN", "1e"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("invalid JSON at offset "), e.getMessage());
        }
        assertEquals("invalid JSON at offset 7: unexpected character '}', expected a string key",
                assertThrows(IllegalArgumentException.class, () -> Json.parse("{\"a\":1,}")).getMessage());
    }

    @Test
    void rejectsDeepNesting() {
        String deep = "[".repeat(5000) + "]".repeat(5000);
        assertThrows(IllegalArgumentException.class, () -> Json.parse(deep));
    }

    @Test
    void caseInsensitiveLookupLastMatchWins() {
        Map<String, Object> m = Json.parseObject("{\"network\":\"a\",\"Other\":1,\"NETWORK\":\"b\"}");
        assertEquals("b", Json.get(m, "Network"));
        assertEquals("NETWORK", Json.findKey(m, "Network"));
        assertEquals(1L, Json.get(m, "other"));
        assertNull(Json.findKey(m, "missing"));
        Map<String, Object> dup = Json.parseObject("{\"a\":1,\"b\":2,\"a\":3}");
        assertEquals(3L, dup.get("a"));
        assertEquals(List.of("b", "a"), List.copyOf(dup.keySet()));
    }

    @Test
    void writesLikeGo() {
        assertEquals("\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u003c\\u003e\\u0026\\u2028\u00e9\"",
                Json.quote("a\"\\\n\r\t\b\f\u0001<>&\u2028\u00e9"));
        assertEquals("\"\\ufffd\"", Json.quote("\ud800"));
        assertEquals("\"\ud83d\ude00\"", Json.quote("\ud83d\ude00"));
        assertEquals("{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\",\"x\":[true,null,2.5]}",
                Json.compact(" { \"VNI\" : 1 ,\n \"VtepMAC\":\"c6:d2:32:6f:8f:44\", \"x\":[ true , null, 2.5 ] }"));
        assertEquals("{\"r\":[1]}", Json.write(Map.of("r", new Json.Raw("[1]"))));
    }

    @Test
    void roundTrips() {
        String text = "{\"a\":[1,-2,3.25,\"x\\u003cy\"],\"b\":{\"c\":null,\"d\":false}}";
        assertEquals(text, Json.write(Json.parse(text)));
    }
}
