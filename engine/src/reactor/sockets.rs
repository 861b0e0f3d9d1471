//! A reactor's sockets in numbered slots: the shard's WebRTC socket (slot 0) and the RTP/RTCP
//! sockets of plain legs, each with who its datagrams belong to. A slot's tag (its number and
//! generation) goes into the receive's `user_data`, so a completion from a socket closed since
//! (and its slot reused) is recognised as stale.

#![forbid(unsafe_code)]

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use super::ring::File;
use super::table::Key;
use crate::proto::session::Socket;

/// Who a socket's datagrams belong to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner {
    /// The shard's WebRTC port: sessions are found by ufrag or source address.
    WebRtc,
    /// One session's plain leg, as that session names the socket.
    Plain { key: Key, via: Socket },
}

struct Slot {
    gen: u16,
    sock: Option<UdpSocket>,
    owner: Owner,
    /// How the ring's operations name the socket (its registered slot, or its descriptor).
    file: File,
}

/// The sockets of one reactor.
pub(super) struct Sockets {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Sockets {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Takes `sock` into a slot; returns the slot.
    pub(super) fn add(&mut self, sock: UdpSocket, owner: Owner) -> usize {
        let file = File::Raw(sock.as_raw_fd());
        match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i];
                s.sock = Some(sock);
                s.owner = owner;
                s.file = file;
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    sock: Some(sock),
                    owner,
                    file,
                });
                self.slots.len() - 1
            }
        }
    }

    /// Slot and generation in 48 bits, for a receive's `user_data`.
    pub(super) fn tag(&self, slot: usize) -> u64 {
        (u64::from(self.slots[slot].gen) << 32) | slot as u64
    }

    /// The slot a tag names, if its socket is still the one the tag was made for.
    pub(super) fn live(&self, tag: u64) -> Option<usize> {
        let slot = (tag & 0xffff_ffff) as usize;
        let gen = ((tag >> 32) & 0xffff) as u16;
        self.slots
            .get(slot)
            .is_some_and(|s| s.gen == gen && s.sock.is_some())
            .then_some(slot)
    }

    /// How the ring names `slot`'s socket: by descriptor until [`Sockets::set_file`] says
    /// otherwise; `None` once it is closed.
    pub(super) fn file(&self, slot: usize) -> Option<File> {
        let s = self.slots.get(slot)?;
        s.sock.as_ref().map(|_| s.file)
    }

    /// Records how the ring names `slot`'s socket.
    pub(super) fn set_file(&mut self, slot: usize, file: File) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.file = file;
        }
    }

    pub(super) fn owner(&self, slot: usize) -> Owner {
        self.slots[slot].owner
    }

    /// Closes the socket of `slot` (its tag goes stale); returns the tag it had, whose receive
    /// the caller cancels, or `None` if it was closed already.
    pub(super) fn close(&mut self, slot: usize) -> Option<u64> {
        let tag = self.tag(slot);
        let s = &mut self.slots[slot];
        s.sock.take()?;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(slot);
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "the table holds real sockets")]
    fn a_closed_sockets_tag_goes_stale_even_when_its_slot_is_reused() {
        let mut s = Sockets::new();
        let bind = || UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = s.add(bind(), Owner::WebRtc);
        let tag = s.tag(a);
        assert_eq!(s.live(tag), Some(a));
        assert!(
            matches!(s.file(a), Some(File::Raw(_))),
            "by descriptor until set_file"
        );
        s.set_file(a, File::Fixed(0));
        assert_eq!(s.file(a), Some(File::Fixed(0)));
        assert_eq!(s.close(a), Some(tag));
        assert_eq!(s.close(a), None);
        assert_eq!(s.live(tag), None);
        assert_eq!(s.file(a), None);
        let b = s.add(bind(), Owner::WebRtc);
        assert_eq!(b, a, "the slot is reused");
        assert_eq!(s.live(tag), None, "under a new generation");
        assert_eq!(s.live(s.tag(b)), Some(b));
    }
}
