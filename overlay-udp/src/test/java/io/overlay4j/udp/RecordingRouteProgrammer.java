package io.overlay4j.udp;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.RouteProgrammer;
import java.io.IOException;
import java.net.Inet4Address;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** A {@link RouteProgrammer} that records each call as a line and can be told to fail a call. */
final class RecordingRouteProgrammer implements RouteProgrammer {
    final List<String> calls = new CopyOnWriteArrayList<>();
    private volatile String failPrefix;
    private volatile boolean failClose;

    /** Makes calls whose recorded line starts with {@code prefix} fail with EPERM (after recording them). */
    RecordingRouteProgrammer failOn(String prefix) {
        this.failPrefix = prefix;
        return this;
    }

    RecordingRouteProgrammer failClose() {
        this.failClose = true;
        return this;
    }

    private void record(String call) throws IOException {
        calls.add(call);
        String f = failPrefix;
        if (f != null && call.startsWith(f)) {
            throw new ErrnoException(call, ErrnoException.EPERM);
        }
    }

    @Override
    public int linkIndex(String device) throws IOException {
        record("linkIndex " + device);
        return 7;
    }

    @Override
    public void setLinkUp(String device) throws IOException {
        record("setLinkUp " + device);
    }

    @Override
    public void setLinkDown(String device) throws IOException {
        record("setLinkDown " + device);
    }

    @Override
    public void setMtu(String device, int mtu) throws IOException {
        record("setMtu " + device + " " + mtu);
    }

    @Override
    public int mtu(String device) throws IOException {
        record("mtu " + device);
        return 1500;
    }

    @Override
    public void addAddress(String device, Inet4Address address, int prefixLength) throws IOException {
        record("addAddress " + device + " " + address.getHostAddress() + "/" + prefixLength);
    }

    @Override
    public void deleteAddress(String device, Inet4Address address, int prefixLength) throws IOException {
        record("deleteAddress " + device + " " + address.getHostAddress() + "/" + prefixLength);
    }

    @Override
    public List<Ipv4Prefix> addresses(String device) throws IOException {
        record("addresses " + device);
        return List.of();
    }

    @Override
    public void addRoute(Route route) throws IOException {
        record("addRoute " + route);
    }

    @Override
    public void replaceRoute(Route route) throws IOException {
        record("replaceRoute " + route);
    }

    @Override
    public void deleteRoute(Route route) throws IOException {
        record("deleteRoute " + route);
    }

    @Override
    public List<Route> routes() throws IOException {
        record("routes");
        return List.of();
    }

    @Override
    public void close() {
        calls.add("close");
        if (failClose) {
            throw new IllegalStateException("test: close failed");
        }
    }
}
