//! What the fuzz targets share: a signaling core configured as the gateway runs it, with a
//! proxy at 127.0.0.1:5090.
use signaling::b2bua::core::{Core, CoreConfig};
use signaling::b2bua::policy::AcceptList;
use signaling::sdp::pts::PtFilter;
use signaling::sip::txn::TimerValues;

pub fn core() -> Core {
    Core::new(CoreConfig {
        own_host: "127.0.0.1".into(),
        sip_port: 5060,
        proxy: Some(vec!["127.0.0.1:5090".parse().unwrap()]),
        timers: TimerValues::default(),
        salt: 1,
        route: None,
        accept: AcceptList::parse("[[WSS]],[[PROXY]]").unwrap(),
        pts: PtFilter::parse("[PCMU/8000]").unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
    })
}
