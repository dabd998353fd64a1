package io.overlay4j.udp;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.testing.AbstractEncapsulatorContractTest;

/** The encapsulator contract against flannel's udp format: every lease is usable, sender and receiver are alike. */
class FlannelUdpEncapsulatorContractTest extends AbstractEncapsulatorContractTest {
    @Override
    protected Encapsulator sender() {
        return FlannelUdpEncapsulator.INSTANCE;
    }

    @Override
    protected Encapsulator receiver() {
        return FlannelUdpEncapsulator.INSTANCE;
    }

    @Override
    protected Lease receiverLease() {
        return new Lease(Ipv4Prefix.parse("100.96.2.0/24"), LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.3")),
                null);
    }
}
