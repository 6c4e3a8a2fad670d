//! The connections of one service as the fairness stage keeps them for the whole capture.
//!
//! The replay needs every connection, in order, until the last one is known, so what it keeps
//! per connection decides the memory of a long capture. A [`ConnObs`] is about 220 bytes; here
//! a connection is a 24-byte record (first packet time, client address as an index into a
//! table of addresses plus the port, real server as an index into the servers seen, where its
//! details start) and its details: the last packet and TCP flag times as variable-length
//! differences from the first packet, and the first frame, about 20 bytes. Volumes and response
//! times are only ever summed or listed per real server, so they are added to per-server
//! totals as the connections come instead of being kept per connection.
//!
//! A client is kept as its address and port: an IPv6 socket address's flow information and
//! scope, which connection records never carry, are not.

use super::byte_chunks::ByteChunks;
use super::input::{ConnObs, TcpMarks};
use crate::topology::FrameRef;
use crate::varint;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

/// One connection, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub client: SocketAddr,
    /// Index into [`ConnTable::servers`]; None when no tunnelled packet showed the server.
    pub rs: Option<usize>,
    pub start_ns: i64,
    pub last_ns: i64,
    pub tcp: Option<TcpMarks>,
    pub first_frame: Option<FrameRef>,
}

/// The times of one connection: [`Conn`] without its client, server and first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimes {
    pub start_ns: i64,
    pub last_ns: i64,
    pub tcp: Option<TcpMarks>,
}

/// What the connections sent to one real server add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTotals {
    pub addr: IpAddr,
    pub connections: u64,
    pub packets_to_server: u64,
    pub bytes_to_server: u64,
    pub packets_to_client: u64,
    pub bytes_to_client: u64,
    /// Response times in nanoseconds, in the order the connections came, as variable-length
    /// integers ([`ServerTotals::response_ms`] reads them): about 3 bytes each where the
    /// milliseconds as `f64` took 8, for every connection of a long capture.
    response_ns: Vec<u8>,
    /// How many response times `response_ns` holds.
    responses: usize,
}

impl ServerTotals {
    /// Response times in milliseconds, in the order the connections came.
    pub fn response_ms(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        let mut at = 0;
        (0..self.responses)
            .map(move |_| varint::get_diff(&self.response_ns, &mut at, 0) as f64 / 1e6)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConnTable {
    records: Vec<Record>,
    details: ByteChunks,
    clients: Vec<IpAddr>,
    client_ids: FxHashMap<IpAddr, u32>,
    servers: Vec<ServerTotals>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    start_ns: i64,
    /// Client port (top 16 bits), whether the entry was created at `start_ns` (bit 47), and
    /// where the details start in `details` (low 47 bits: chunk and offset).
    port_at: u64,
    client: u32,
    /// Index into `servers`, or `NO_SERVER`.
    rs: u32,
}

const NO_SERVER: u32 = u32::MAX;
const AT_BITS: u32 = 47;
const AT_MASK: u64 = (1 << AT_BITS) - 1;
const CREATED_AT_START: u64 = 1 << AT_BITS;

/// The most bytes one connection's details take: the flags; the last packet, four TCP marks
/// and the first frame's time as variable-length differences; its capture, interface and
/// frame number.
const MAX_DETAILS: usize = 1 + 10 * 6 + 5 + 5 + 10;

// What the first byte of a connection's details says is there.
const HAS_TCP: u8 = 1;
const HAS_SYN: u8 = 1 << 1;
const HAS_ACK: u8 = 1 << 2;
const HAS_FIN: u8 = 1 << 3;
const HAS_RST: u8 = 1 << 4;
const HAS_FRAME: u8 = 1 << 5;

impl Record {
    fn port(&self) -> u16 {
        (self.port_at >> 48) as u16
    }
    /// Where its details are in [`ConnTable::details`].
    fn at(&self) -> u64 {
        self.port_at & AT_MASK
    }
}

impl ConnTable {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The real servers the connections went to, in the order they first appeared.
    pub fn servers(&self) -> &[ServerTotals] {
        &self.servers
    }

    pub fn push(&mut self, c: &ConnObs) {
        let client = match self.client_ids.get(&c.client.ip()) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.clients.len()).expect("at most 2^32 client addresses");
                self.clients.push(c.client.ip());
                self.client_ids.insert(c.client.ip(), id);
                id
            }
        };
        let rs = match c.rs {
            Some(addr) => self.add_to_server(addr, c),
            None => NO_SERVER,
        };
        let at = self.details.start(MAX_DETAILS);
        assert!(at <= AT_MASK, "connection details past 2^47 bytes");
        let created_at_start = c.tcp.and_then(|m| m.syn_ns).is_none_or(|t| t == c.start_ns);
        self.records.push(Record {
            start_ns: c.start_ns,
            port_at: u64::from(c.client.port()) << 48
                | if created_at_start {
                    CREATED_AT_START
                } else {
                    0
                }
                | at,
            client,
            rs,
        });
        self.put_details(c);
    }

    fn add_to_server(&mut self, addr: IpAddr, c: &ConnObs) -> u32 {
        let k = match self.servers.iter().position(|s| s.addr == addr) {
            Some(k) => k,
            None => {
                self.servers.push(ServerTotals {
                    addr,
                    connections: 0,
                    packets_to_server: 0,
                    bytes_to_server: 0,
                    packets_to_client: 0,
                    bytes_to_client: 0,
                    response_ns: Vec::new(),
                    responses: 0,
                });
                self.servers.len() - 1
            }
        };
        let s = &mut self.servers[k];
        s.connections += 1;
        s.packets_to_server += c.packets_to_server;
        s.bytes_to_server += c.bytes_to_server;
        s.packets_to_client += c.packets_to_client;
        s.bytes_to_client += c.bytes_to_client;
        if let Some(rt) = c.response_time_ns {
            varint::put_diff(&mut s.response_ns, rt, 0);
            s.responses += 1;
        }
        u32::try_from(k).expect("fewer than 2^32 - 1 real servers")
    }

    fn put_details(&mut self, c: &ConnObs) {
        let m = c.tcp.unwrap_or_default();
        let marks = [
            (m.syn_ns, HAS_SYN),
            (m.ack_ns, HAS_ACK),
            (m.fin_ns, HAS_FIN),
            (m.rst_ns, HAS_RST),
        ];
        let mut flags = if c.tcp.is_some() { HAS_TCP } else { 0 };
        for (t, bit) in marks {
            if t.is_some() {
                flags |= bit;
            }
        }
        if c.first_frame.is_some() {
            flags |= HAS_FRAME;
        }
        let out = self.details.tail();
        out.push(flags);
        varint::put_diff(out, c.last_ns, c.start_ns);
        for t in marks.iter().filter_map(|m| m.0) {
            varint::put_diff(out, t, c.start_ns);
        }
        if let Some(f) = c.first_frame {
            varint::put(out, u64::from(f.capture));
            varint::put(out, u64::from(f.interface));
            varint::put(out, f.frame);
            varint::put_diff(out, f.ts_ns, c.start_ns);
        }
    }

    pub fn get(&self, i: usize) -> Conn {
        let (times, flags, mut at) = self.decode_times(i);
        let (bytes, _) = self.details.at(self.records[i].at());
        let start = times.start_ns;
        let first_frame = (flags & HAS_FRAME != 0).then(|| FrameRef {
            capture: varint::get(bytes, &mut at) as u32,
            interface: varint::get(bytes, &mut at) as u32,
            frame: varint::get(bytes, &mut at),
            ts_ns: varint::get_diff(bytes, &mut at, start),
        });
        Conn {
            client: self.client(i),
            rs: self.rs(i),
            start_ns: start,
            last_ns: times.last_ns,
            tcp: times.tcp,
            first_frame,
        }
    }

    /// What the entry of connection `i` follows from ([`super::entry::EntryLife::of`]), decoded
    /// without its client and first frame: the replay asks for it several times per connection
    /// (once as it arrives, again while its client's port is live, each time its table of live
    /// entries is full), where the whole of [`ConnTable::get`] was a tenth of all the
    /// instructions of `verify`.
    pub fn times(&self, i: usize) -> ConnTimes {
        self.decode_times(i).0
    }

    /// The times of connection `i`, its details' flags, and where its first frame starts.
    fn decode_times(&self, i: usize) -> (ConnTimes, u8, usize) {
        let r = &self.records[i];
        let (bytes, mut at) = self.details.at(r.at());
        let flags = bytes[at];
        at += 1;
        let start = r.start_ns;
        let last_ns = varint::get_diff(bytes, &mut at, start);
        let mut mark =
            |bit: u8| (flags & bit != 0).then(|| varint::get_diff(bytes, &mut at, start));
        let marks = TcpMarks {
            syn_ns: mark(HAS_SYN),
            ack_ns: mark(HAS_ACK),
            fin_ns: mark(HAS_FIN),
            rst_ns: mark(HAS_RST),
        };
        let times = ConnTimes {
            start_ns: start,
            last_ns,
            tcp: (flags & HAS_TCP != 0).then_some(marks),
        };
        (times, flags, at)
    }

    pub fn client(&self, i: usize) -> SocketAddr {
        let r = &self.records[i];
        SocketAddr::new(self.clients[r.client as usize], r.port())
    }

    /// The client address (as an index into this table's addresses) and port: equal exactly
    /// when the clients are.
    pub fn client_key(&self, i: usize) -> (u32, u16) {
        let r = &self.records[i];
        (r.client, r.port())
    }

    pub fn rs(&self, i: usize) -> Option<usize> {
        let rs = self.records[i].rs;
        (rs != NO_SERVER).then_some(rs as usize)
    }

    pub fn start_ns(&self, i: usize) -> i64 {
        self.records[i].start_ns
    }

    /// When the connection's entry was created ([`super::entry::created_ns`]), read without
    /// decoding the details when it is the first packet, as it nearly always is.
    pub fn created_ns(&self, i: usize, proto: super::Proto) -> i64 {
        let r = &self.records[i];
        if r.port_at & CREATED_AT_START != 0 {
            return r.start_ns;
        }
        let c = self.times(i);
        super::entry::created_ns(proto, c.tcp, c.start_ns)
    }

    /// Times and first frames of `client`'s connections, in table order.
    pub fn first_frames_of(
        &self,
        client: SocketAddr,
    ) -> impl Iterator<Item = (i64, FrameRef)> + '_ {
        let id = self.client_ids.get(&client.ip()).copied();
        (0..self.len())
            .filter(move |&i| {
                let r = &self.records[i];
                Some(r.client) == id && r.port() == client.port()
            })
            .filter_map(|i| {
                let c = self.get(i);
                Some((c.start_ns, c.first_frame?))
            })
    }

    /// Puts the connections in order of first packet, then client (address, then port), then
    /// arrival: what a stable sort by (start, client) of the connections as they came gives.
    pub fn sort_by_start_and_client(&mut self) {
        // Client indices in address order, so that comparing indices compares addresses.
        let mut by_addr: Vec<u32> = (0..self.clients.len() as u32).collect();
        by_addr.sort_unstable_by_key(|&k| self.clients[k as usize]);
        let mut rank = vec![0u32; by_addr.len()];
        for (new, &old) in by_addr.iter().enumerate() {
            rank[old as usize] = new as u32;
        }
        for r in &mut self.records {
            r.client = rank[r.client as usize];
        }
        self.clients = by_addr.iter().map(|&k| self.clients[k as usize]).collect();
        for (id, addr) in self.clients.iter().enumerate() {
            self.client_ids.insert(*addr, id as u32);
        }
        // Details are written in arrival order, so their offset breaks the remaining ties.
        self.records
            .sort_unstable_by_key(|r| (r.start_ns, r.client, r.port(), r.port_at & AT_MASK));
    }
}

impl<'a> FromIterator<&'a ConnObs> for ConnTable {
    fn from_iter<I: IntoIterator<Item = &'a ConnObs>>(iter: I) -> Self {
        let mut table = ConnTable::default();
        for c in iter {
            table.push(c);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times saturate: the extremes test builds one at i64::MAX (and overrides those fields).
    fn obs(client: &str, rs: Option<&str>, start: i64) -> ConnObs {
        ConnObs {
            client: client.parse().unwrap(),
            rs: rs.map(|r| r.parse().unwrap()),
            start_ns: start,
            last_ns: start.saturating_add(4_000_000),
            tcp: Some(TcpMarks {
                syn_ns: Some(start),
                ack_ns: Some(start.saturating_add(150_000)),
                fin_ns: None,
                rst_ns: Some(start.saturating_sub(3)),
            }),
            packets_to_server: 5,
            bytes_to_server: 400,
            packets_to_client: 4,
            bytes_to_client: 3000,
            response_time_ns: Some(2_500_000),
            first_frame: Some(FrameRef {
                capture: 2,
                interface: 70_000,
                frame: 5_000_000_000,
                ts_ns: start.saturating_add(17),
            }),
        }
    }

    #[test]
    fn connections_come_back_as_they_went_in() {
        let mut a = obs(
            "[2001:db8::7]:443",
            Some("10.0.0.2"),
            1_700_000_000_000_000_000,
        );
        let b = ConnObs {
            tcp: None,
            first_frame: None,
            rs: None,
            last_ns: i64::MIN,
            ..obs("10.1.1.1:5000", None, i64::MAX)
        };
        a.tcp.as_mut().unwrap().syn_ns = Some(a.start_ns + 1);
        let table: ConnTable = [&a, &b].into_iter().collect();
        for (i, c) in [&a, &b].into_iter().enumerate() {
            let got = table.get(i);
            assert_eq!(
                (
                    got.client,
                    got.start_ns,
                    got.last_ns,
                    got.tcp,
                    got.first_frame
                ),
                (c.client, c.start_ns, c.last_ns, c.tcp, c.first_frame)
            );
        }
        assert_eq!(table.get(0).rs, Some(0));
        assert_eq!(
            table.servers()[0].addr,
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(table.get(1).rs, None);
        // The SYN after the first packet creates the entry, not the first packet.
        assert_eq!(
            table.created_ns(0, super::super::Proto::Tcp),
            a.start_ns + 1
        );
        assert_eq!(table.created_ns(1, super::super::Proto::Tcp), b.start_ns);
    }

    #[test]
    fn servers_add_up_their_connections() {
        let conns = [
            obs("10.1.1.1:1", Some("10.0.0.2"), 10),
            obs("10.1.1.2:1", Some("10.0.0.3"), 20),
            ConnObs {
                response_time_ns: Some(1_000_000),
                ..obs("10.1.1.3:1", Some("10.0.0.2"), 30)
            },
        ];
        let table: ConnTable = conns.iter().collect();
        let s = &table.servers()[0];
        assert_eq!(
            (s.connections, s.packets_to_server, s.bytes_to_client),
            (2, 10, 6000)
        );
        assert_eq!(s.response_ms().collect::<Vec<_>>(), vec![2.5, 1.0]);
        assert_eq!(table.servers()[1].connections, 1);
    }

    #[test]
    fn sorting_orders_by_start_then_client_then_arrival() {
        let conns = [
            obs("10.0.0.9:80", None, 5),
            obs("[::1]:1", None, 5),
            obs("10.0.0.10:1", None, 5),
            obs("10.0.0.9:79", None, 5),
            obs("10.0.0.9:80", Some("10.0.0.2"), 5),
            obs("10.0.0.1:1", None, 4),
        ];
        let mut table: ConnTable = conns.iter().collect();
        table.sort_by_start_and_client();
        let mut want: Vec<(i64, SocketAddr, Option<IpAddr>)> =
            conns.iter().map(|c| (c.start_ns, c.client, c.rs)).collect();
        want.sort_by_key(|c| (c.0, c.1));
        let got: Vec<(i64, SocketAddr, Option<IpAddr>)> = (0..table.len())
            .map(|i| {
                let c = table.get(i);
                (c.start_ns, c.client, c.rs.map(|k| table.servers()[k].addr))
            })
            .collect();
        assert_eq!(got, want);
        let frames: Vec<i64> = table
            .first_frames_of("10.0.0.9:80".parse().unwrap())
            .map(|(t, f)| f.ts_ns - t)
            .collect();
        assert_eq!(frames, vec![17, 17]);
    }
}
