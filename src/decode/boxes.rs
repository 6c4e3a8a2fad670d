//! The boxes of the packets that tunnels and ICMP errors carry (`Transport::Tunnel`'s inner
//! packet, `Icmp::quoted`), kept from one frame to the next: the [`Decoder`](super::Decoder)
//! takes them back out of every frame it has handed on and fills them again for the frames
//! after it, so that a tunnelled frame costs no allocation once the first few have been seen.

use super::ipvs_sync::SyncSummary;
use super::packet::{Control, IpPacket, Net, Packet, Transport};

/// Spare boxes kept; a frame holds at most `MAX_IP_LAYERS - 1` of them, more would only hold
/// memory after a burst of held-back frames is released.
const MAX_SPARE: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct PacketBoxes {
    // The boxes themselves are what is kept: a frame's tunnel takes one as it is.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<IpPacket>>,
    /// The box of the last IPVS sync message's summary (`Control::IpvsSync`): a few hundred
    /// bytes that every other packet does not carry.
    sync: Option<Box<SyncSummary>>,
}

impl PacketBoxes {
    /// A box to decode a packet into: a spare one when there is one (holding what it held
    /// last, for the decode to write over), else a new one.
    pub fn take(&mut self) -> Box<IpPacket> {
        self.spare
            .pop()
            .unwrap_or_else(|| Box::new(IpPacket::BLANK))
    }

    /// A box for a sync message's summary, to be written over.
    pub fn take_sync(&mut self) -> Box<SyncSummary> {
        self.sync
            .take()
            .unwrap_or_else(|| Box::new(SyncSummary::BLANK))
    }

    /// A box that will not be handed on after all (its decode failed, or it was only a look).
    pub fn give_back(&mut self, mut packet: Box<IpPacket>) {
        self.reclaim_ip(&mut packet);
        self.keep(packet);
    }

    /// Takes the boxes out of a frame's packet that has been handed on and will be dropped
    /// (its tunnels and quotes are left empty).
    pub fn reclaim(&mut self, packet: &mut Packet) {
        if let Net::Ip(ip) = &mut packet.net {
            self.reclaim_ip(ip);
        }
        if let Some(Control::IpvsSync(b)) = packet.control.take() {
            self.sync = Some(b);
        }
    }

    /// Takes the boxes out of one IP packet's transport, and out of the packets in them.
    pub fn reclaim_ip(&mut self, ip: &mut IpPacket) {
        let inner = match &mut ip.transport {
            Transport::Icmp(icmp) => icmp.quoted.take(),
            Transport::Tunnel { .. } => {
                match std::mem::replace(&mut ip.transport, Transport::Other) {
                    Transport::Tunnel { inner, .. } => Some(inner),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(inner) = inner {
            self.give_back(inner);
        }
    }

    fn keep(&mut self, packet: Box<IpPacket>) {
        if self.spare.len() < MAX_SPARE {
            self.spare.push(packet);
        }
    }
}
