//! The connections of one service as the fairness stage keeps them for the whole capture.
//!
//! The replay needs every connection, in order, until the last one is known, so what it keeps
//! per connection decides the memory of a long capture. A [`ConnObs`] is about 220 bytes; here
//! a connection is a 24-byte record (first packet time, client address as an index into a
//! table of addresses plus the port, real server as an index into the servers seen, where its
//! details start) and its details: the last packet and TCP flag times as variable-length
//! differences from the first packet, the first frame and the response time, about 23 bytes.
//! Volumes are only ever summed per real server, so they are added to per-server totals as the
//! connections come instead of being kept per connection.
//!
//! Past [`spill_rows`] connections the table goes to disk ([`super::spill`]), so that a long
//! capture's connections do not all stay in memory.
//!
//! A client is kept as its address and port: an IPv6 socket address's flow information and
//! scope, which connection records never carry, are not.

use super::byte_chunks::ByteChunks;
use super::input::{ConnObs, TcpMarks};
use super::spill::{
    get_details, put_details, Details, Row, RowHead, Sorted, Spill, MAX_DETAILS, NO_SERVER,
};
use crate::topology::FrameRef;
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
    /// How many of its connections have a response time ([`ConnTable::response_ms`]).
    pub responses: usize,
}

pub struct ConnTable {
    rows: Rows,
    clients: Vec<IpAddr>,
    client_ids: FxHashMap<IpAddr, u32>,
    servers: Vec<ServerTotals>,
    /// Connections kept in memory before the table goes to disk.
    spill_at: usize,
}

/// Where the connections are.
enum Rows {
    /// In memory: records and their details.
    Memory {
        records: Vec<Record>,
        details: ByteChunks,
    },
    /// On their way to disk, in the order they came ([`ConnTable::sort_by_start_and_client`]
    /// puts them in order; they cannot be read before).
    Spilling(Spill),
    /// On disk, sorted.
    Sorted(Sorted),
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable::spilling_at(spill_rows())
    }
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows = match &self.rows {
            Rows::Memory { .. } => "memory",
            Rows::Spilling(_) => "spilling",
            Rows::Sorted(_) => "on disk",
        };
        f.debug_struct("ConnTable")
            .field("len", &self.len())
            .field("rows", &rows)
            .field("clients", &self.clients.len())
            .field("servers", &self.servers)
            .finish()
    }
}

/// Connections a table keeps in memory before it goes to disk: `LVSCHECK_SPILL_ROWS` when set
/// (the tests set it low to run the disk path on small captures), else 65 536 (about 3 MB in
/// memory; a capture with fewer connections per service never writes a file).
pub fn spill_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        std::env::var("LVSCHECK_SPILL_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 16)
    })
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

const AT_BITS: u32 = 47;
const AT_MASK: u64 = (1 << AT_BITS) - 1;
const CREATED_AT_START: u64 = 1 << AT_BITS;

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
    /// A table that goes to disk past `rows` connections.
    pub fn spilling_at(rows: usize) -> ConnTable {
        ConnTable {
            rows: Rows::Memory {
                records: Vec::new(),
                details: ByteChunks::default(),
            },
            clients: Vec::new(),
            client_ids: FxHashMap::default(),
            servers: Vec::new(),
            spill_at: rows,
        }
    }

    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Memory { records, .. } => records.len(),
            Rows::Spilling(s) => s.len(),
            Rows::Sorted(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The real servers the connections went to, in the order they first appeared.
    pub fn servers(&self) -> &[ServerTotals] {
        &self.servers
    }

    /// Why the table stayed in memory, in part or whole, when it was to go to disk.
    pub fn spill_trouble(&self) -> Option<&str> {
        match &self.rows {
            Rows::Memory { .. } => None,
            Rows::Spilling(s) => s.trouble(),
            Rows::Sorted(s) => s.trouble(),
        }
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
        let created_at_start = c.tcp.and_then(|m| m.syn_ns).is_none_or(|t| t == c.start_ns);
        if matches!(&self.rows, Rows::Memory { records, .. } if records.len() >= self.spill_at) {
            self.start_spilling();
        }
        match &mut self.rows {
            Rows::Memory { records, details } => {
                let at = details.start(MAX_DETAILS);
                assert!(at <= AT_MASK, "connection details past 2^47 bytes");
                records.push(Record {
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
                put_details(details.tail(), c.start_ns, &details_of(c), false);
            }
            Rows::Spilling(spill) => {
                let row = Row {
                    start_ns: c.start_ns,
                    client,
                    port: c.client.port(),
                    created_at_start,
                    rs,
                    last_ns: c.last_ns,
                    tcp: c.tcp,
                    first_frame: c.first_frame,
                    response_ns: c.response_time_ns,
                };
                spill.push(row, &self.clients);
            }
            Rows::Sorted(_) => panic!("a connection added to a table already sorted"),
        }
    }

    /// Moves the rows kept so far to a [`Spill`], in the order they came; no more than the
    /// rows the table would keep wait in memory for their run.
    fn start_spilling(&mut self) {
        let mut spill = Spill::new(self.spill_at);
        for i in 0..self.len() {
            let row = self.row(i);
            spill.push(row, &self.clients);
        }
        self.rows = Rows::Spilling(spill);
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
        s.responses += usize::from(c.response_time_ns.is_some());
        u32::try_from(k).expect("fewer than 2^32 - 1 real servers")
    }

    /// Connection `i` as a row, wherever it is.
    fn row(&self, i: usize) -> Row {
        match &self.rows {
            Rows::Memory { records, details } => {
                let r = &records[i];
                let (bytes, mut at) = details.at(r.at());
                let (d, _) = get_details(bytes, &mut at, r.start_ns, true);
                Row {
                    start_ns: r.start_ns,
                    client: r.client,
                    port: r.port(),
                    created_at_start: r.port_at & CREATED_AT_START != 0,
                    rs: r.rs,
                    last_ns: d.last_ns,
                    tcp: d.tcp,
                    first_frame: d.first_frame,
                    response_ns: d.response_ns,
                }
            }
            Rows::Sorted(s) => s.row(i),
            Rows::Spilling(_) => panic!("the table is read before it is sorted"),
        }
    }

    pub fn get(&self, i: usize) -> Conn {
        let r = self.row(i);
        Conn {
            client: SocketAddr::new(self.clients[r.client as usize], r.port),
            rs: (r.rs != NO_SERVER).then_some(r.rs as usize),
            start_ns: r.start_ns,
            last_ns: r.last_ns,
            tcp: r.tcp,
            first_frame: r.first_frame,
        }
    }

    /// What the entry of connection `i` follows from ([`super::entry::EntryLife::of`]), decoded
    /// without its client and first frame: the replay asks for it several times per connection
    /// (once as it arrives, again while its client's port is live, each time its table of live
    /// entries is full), where the whole of [`ConnTable::get`] was a tenth of all the
    /// instructions of `verify`.
    pub fn times(&self, i: usize) -> ConnTimes {
        match &self.rows {
            Rows::Memory { records, details } => {
                let r = &records[i];
                let (bytes, mut at) = details.at(r.at());
                let (d, _) = get_details(bytes, &mut at, r.start_ns, false);
                ConnTimes {
                    start_ns: r.start_ns,
                    last_ns: d.last_ns,
                    tcp: d.tcp,
                }
            }
            _ => {
                let r = self.row(i);
                ConnTimes {
                    start_ns: r.start_ns,
                    last_ns: r.last_ns,
                    tcp: r.tcp,
                }
            }
        }
    }

    /// The client address (as an index into this table's addresses) and port of connection
    /// `i`, whether its entry was created by its first packet, its server and its start: the
    /// fixed-size part of a connection, read without decoding the rest in memory.
    fn head(&self, i: usize) -> RowHead {
        match &self.rows {
            Rows::Memory { records, .. } => {
                let r = &records[i];
                (
                    r.client,
                    r.port(),
                    r.port_at & CREATED_AT_START != 0,
                    r.rs,
                    r.start_ns,
                )
            }
            Rows::Sorted(s) => s.head(i),
            Rows::Spilling(_) => panic!("the table is read before it is sorted"),
        }
    }

    pub fn client(&self, i: usize) -> SocketAddr {
        let (client, port, ..) = self.head(i);
        SocketAddr::new(self.clients[client as usize], port)
    }

    /// The client address (as an index into this table's addresses) and port: equal exactly
    /// when the clients are.
    pub fn client_key(&self, i: usize) -> (u32, u16) {
        let (client, port, ..) = self.head(i);
        (client, port)
    }

    pub fn rs(&self, i: usize) -> Option<usize> {
        let rs = self.head(i).3;
        (rs != NO_SERVER).then_some(rs as usize)
    }

    pub fn start_ns(&self, i: usize) -> i64 {
        self.head(i).4
    }

    /// When the connection's entry was created ([`super::entry::created_ns`]), read without
    /// decoding the details when it is the first packet, as it nearly always is.
    pub fn created_ns(&self, i: usize, proto: super::Proto) -> i64 {
        self.created_of(i, self.head(i), proto)
    }

    /// [`ConnTable::created_ns`] of connection `i`, whose fixed part is `head`.
    fn created_of(&self, i: usize, head: RowHead, proto: super::Proto) -> i64 {
        let (_, _, at_start, _, start) = head;
        if at_start {
            return start;
        }
        let c = self.times(i);
        super::entry::created_ns(proto, c.tcp, c.start_ns)
    }

    /// When connection `i`'s entry was created, its client and its server: what a scheduled
    /// decision is replayed with, in one look-up.
    pub fn decision(&self, i: usize, proto: super::Proto) -> (i64, SocketAddr, Option<usize>) {
        let head = self.head(i);
        let (client, port, _, rs, _) = head;
        let created = self.created_of(i, head, proto);
        let rs = (rs != NO_SERVER).then_some(rs as usize);
        (
            created,
            SocketAddr::new(self.clients[client as usize], port),
            rs,
        )
    }

    /// The response times of each real server's connections ([`ConnTable::servers`]' order), in
    /// milliseconds, in table order. They are kept with the connections, not with the servers,
    /// so that a table on disk holds them there too.
    pub fn response_ms(&self) -> Vec<Vec<f64>> {
        let mut by_server: Vec<Vec<f64>> = self
            .servers
            .iter()
            .map(|s| Vec::with_capacity(s.responses))
            .collect();
        for i in 0..self.len() {
            let r = self.row(i);
            if let (Some(rt), Some(list)) = (r.response_ns, by_server.get_mut(r.rs as usize)) {
                list.push(rt as f64 / 1e6);
            }
        }
        by_server
    }

    /// Times and first frames of `client`'s connections, in table order.
    pub fn first_frames_of(
        &self,
        client: SocketAddr,
    ) -> impl Iterator<Item = (i64, FrameRef)> + '_ {
        let id = self.client_ids.get(&client.ip()).copied();
        (0..self.len())
            .filter(move |&i| {
                let (c, port, ..) = self.head(i);
                Some(c) == id && port == client.port()
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
        let placeholder = Rows::Memory {
            records: Vec::new(),
            details: ByteChunks::default(),
        };
        self.rows = match std::mem::replace(&mut self.rows, placeholder) {
            Rows::Memory {
                mut records,
                details,
            } => {
                for r in &mut records {
                    r.client = rank[r.client as usize];
                }
                // Details are written in arrival order, so their offset breaks the remaining
                // ties.
                records.sort_unstable_by_key(|r| {
                    (r.start_ns, r.client, r.port(), r.port_at & AT_MASK)
                });
                Rows::Memory { records, details }
            }
            // Compared by the addresses the rows' indices had when written.
            Rows::Spilling(spill) => Rows::Sorted(spill.sort(&self.clients, &rank)),
            sorted @ Rows::Sorted(_) => sorted,
        };
        self.clients = by_addr.iter().map(|&k| self.clients[k as usize]).collect();
        for (id, addr) in self.clients.iter().enumerate() {
            self.client_ids.insert(*addr, id as u32);
        }
    }
}

/// The details of `c` a table keeps.
fn details_of(c: &ConnObs) -> Details {
    Details {
        last_ns: c.last_ns,
        tcp: c.tcp,
        first_frame: c.first_frame,
        response_ns: c.response_time_ns,
    }
}

impl<'a> FromIterator<&'a ConnObs> for ConnTable {
    /// Kept in memory and in the order given (a table built from a list by hand is read in
    /// that order, unsorted).
    fn from_iter<I: IntoIterator<Item = &'a ConnObs>>(iter: I) -> Self {
        let mut table = ConnTable::spilling_at(usize::MAX);
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
        assert_eq!(table.response_ms()[0], vec![2.5, 1.0]);
        assert_eq!(table.response_ms()[1], vec![2.5]);
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
