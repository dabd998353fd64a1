package io.overlay4j.udp;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.testing.AbstractEncapsulatorContractTest;

/**
 * The encapsulator contract against VXLAN: two VTEPs of VNI 1, the sender addressing the receiver by the VtepMAC of
 * its lease; a udp lease is unusable.
 */
class VxlanEncapsulatorContractTest extends AbstractEncapsulatorContractTest {
    private static final VxlanEncapsulator SENDER = VxlanEncapsulator.of(1, "c6:d2:32:6f:8f:44");
    private static final VxlanEncapsulator RECEIVER = VxlanEncapsulator.of(1, "de:0a:7d:1e:21:55");

    @Override
    protected Encapsulator sender() {
        return SENDER;
    }

    @Override
    protected Encapsulator receiver() {
        return RECEIVER;
    }

    @Override
    protected Lease receiverLease() {
        return new Lease(Ipv4Prefix.parse("100.96.2.0/24"), new LeaseAttributes(
                Ipv4Prefix.parseAddress("10.168.0.3"), null, "vxlan", RECEIVER.backendData()), null);
    }

    @Override
    protected Lease unusableLease() {
        return new Lease(Ipv4Prefix.parse("100.96.3.0/24"), LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.4")),
                null);
    }
}
