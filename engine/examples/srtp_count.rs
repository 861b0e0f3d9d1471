//! A fixed workload for `valgrind --tool=callgrind` (instruction counts are deterministic where
//! wall-clock benches on a shared VM are not): protects and then unprotects `N` PCMU-sized RTP
//! packets (12-byte header, 160-byte payload) with one SRTP profile, in memory.
//!
//! `cargo build --release -p engine --example srtp_count`, then
//! `valgrind --tool=callgrind target/release/examples/srtp_count 256gcm 2000` and the same with
//! 1000: the difference of the two totals divided by 1000 is the instructions per packet of one
//! protect plus one unprotect, without the set-up. Profiles: `cm80`, `128gcm`, `256gcm`.

use std::hint::black_box;

use engine::proto::srtp::{Direction, SrtpKey, SrtpProfile, SrtpSession};

fn main() {
    let mut args = std::env::args().skip(1);
    let profile = match args.next().as_deref() {
        Some("cm80") => SrtpProfile::Aes128CmSha1_80,
        Some("128gcm") => SrtpProfile::AeadAes128Gcm,
        Some("256gcm") | None => SrtpProfile::AeadAes256Gcm,
        Some(p) => panic!("unknown profile {p}"),
    };
    let n: u16 = args
        .next()
        .map_or(1000, |a| a.parse().expect("packet count"));
    let key = SrtpKey::from_key_salt(&vec![7; profile.key_len()], &vec![9; profile.salt_len()])
        .expect("profile lengths fit");
    let mut tx = SrtpSession::new(profile, &key, Direction::Outbound).expect("outbound session");
    let mut rx = SrtpSession::new(profile, &key, Direction::Inbound).expect("inbound session");
    let mut buf = [0u8; 512];
    for seq in 1..=n {
        buf[0] = 0x80;
        buf[1] = 0;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        buf[12..172].fill(seq as u8);
        let len = tx.protect_rtp(&mut buf, 172).expect("protect");
        let len = rx.unprotect_rtp(&mut buf, len).expect("unprotect");
        assert_eq!(black_box(len), 172);
    }
}
