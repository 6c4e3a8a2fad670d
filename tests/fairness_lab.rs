//! The lab's recordings from a real Linux 6.1 IPVS director (fixtures/wrr, tutorial,
//! wlc-long, sh-clients, persistence),
//! reduced to what the fairness stage consumes: for every client connection tunnelled by the
//! director, the client, the real server (outer destination of the IP-in-IP packets), and the
//! times of its first SYN, first pure ACK and first FIN. The tables were extracted from the
//! director's capture with tshark, independently of lvscheck:
//!
//! `tshark -r lb.pcap -Y "ip.proto==4 && tcp" -T fields -e frame.time_epoch -e ip.dst -e ip.src -e tcp.srcport -e tcp.flags.syn -e tcp.flags.ack -e tcp.flags.fin -e tcp.flags.reset -e tcp.len`
//!
//! grouped by client port. The expected outcome is what the fixtures' READMEs state the
//! director did: it must be reproduced in full, with the kernel's list order found from a
//! sorted rules file.

use lvscheck::fairness::entry::{counters_at, EntryLife};
use lvscheck::fairness::{
    analyse, analyse_observed, ConnObs, ConnTable, FairnessInput, Proto, Scheduler, Server,
    ServiceConfig, ServiceObs, TcpMarks, Timeline,
};
use std::net::{IpAddr, SocketAddr};

/// (client, real server, SYN, first ACK, first FIN, last packet, packets, payload bytes).
type Row = (
    &'static str,
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    u64,
    u64,
);

/// fixtures/wrr/lb.pcap: `-s wrr`, rs-a .11 (w 3), rs-b .12 (w 2), rs-c .13 (w 1) added in
/// that order; thirty sequential requests.
const WRR: &[Row] = &[
    (
        "192.168.60.200:43334",
        "192.168.60.13",
        Some(1795629592605686000),
        Some(1795629592612133000),
        Some(1795629592753727000),
        1795629592753727000,
        7,
        82,
    ),
    (
        "192.168.60.200:43342",
        "192.168.60.12",
        Some(1795629594291745000),
        Some(1795629594308333000),
        Some(1795629594528514000),
        1795629594528514000,
        6,
        82,
    ),
    (
        "192.168.60.200:43352",
        "192.168.60.11",
        Some(1795629595311622000),
        Some(1795629595331323000),
        Some(1795629595439783000),
        1795629595439783000,
        6,
        82,
    ),
    (
        "192.168.60.200:42838",
        "192.168.60.11",
        Some(1795629596431654000),
        Some(1795629596432648000),
        Some(1795629596548071000),
        1795629596548071000,
        7,
        82,
    ),
    (
        "192.168.60.200:42842",
        "192.168.60.12",
        Some(1795629597495735000),
        Some(1795629597496365000),
        Some(1795629597566819000),
        1795629597566819000,
        6,
        82,
    ),
    (
        "192.168.60.200:42852",
        "192.168.60.11",
        Some(1795629598298127000),
        Some(1795629598299245000),
        Some(1795629598471708000),
        1795629598471708000,
        7,
        82,
    ),
    (
        "192.168.60.200:42860",
        "192.168.60.13",
        Some(1795629599892495000),
        Some(1795629599899932000),
        Some(1795629600013450000),
        1795629600013450000,
        6,
        82,
    ),
    (
        "192.168.60.200:42868",
        "192.168.60.12",
        Some(1795629601083614000),
        Some(1795629601084539000),
        Some(1795629601149826000),
        1795629601149826000,
        6,
        82,
    ),
    (
        "192.168.60.200:42874",
        "192.168.60.11",
        Some(1795629602664196000),
        Some(1795629602665617000),
        Some(1795629602772374000),
        1795629602772374000,
        6,
        82,
    ),
    (
        "192.168.60.200:42884",
        "192.168.60.11",
        Some(1795629603583849000),
        Some(1795629603584780000),
        Some(1795629603768693000),
        1795629603768693000,
        5,
        82,
    ),
    (
        "192.168.60.200:42892",
        "192.168.60.12",
        Some(1795629605269261000),
        Some(1795629605269917000),
        Some(1795629605425604000),
        1795629605425604000,
        6,
        82,
    ),
    (
        "192.168.60.200:52530",
        "192.168.60.11",
        Some(1795629607024076000),
        Some(1795629607024687000),
        Some(1795629607124801000),
        1795629607124801000,
        6,
        82,
    ),
    (
        "192.168.60.200:52540",
        "192.168.60.13",
        Some(1795629607859080000),
        Some(1795629607859922000),
        Some(1795629607995935000),
        1795629607995935000,
        6,
        82,
    ),
    (
        "192.168.60.200:52544",
        "192.168.60.12",
        Some(1795629609192428000),
        Some(1795629609214963000),
        Some(1795629609285279000),
        1795629609285279000,
        6,
        82,
    ),
    (
        "192.168.60.200:52558",
        "192.168.60.11",
        Some(1795629609984237000),
        Some(1795629609984792000),
        Some(1795629610109402000),
        1795629610109402000,
        7,
        82,
    ),
    (
        "192.168.60.200:52568",
        "192.168.60.11",
        Some(1795629611867543000),
        Some(1795629611868139000),
        Some(1795629611987982000),
        1795629611987982000,
        7,
        82,
    ),
    (
        "192.168.60.200:52578",
        "192.168.60.12",
        Some(1795629613174484000),
        Some(1795629613175185000),
        Some(1795629613261795000),
        1795629613261795000,
        6,
        82,
    ),
    (
        "192.168.60.200:52594",
        "192.168.60.11",
        Some(1795629613717973000),
        Some(1795629613718602000),
        Some(1795629613800427000),
        1795629613800427000,
        7,
        82,
    ),
    (
        "192.168.60.200:52606",
        "192.168.60.13",
        Some(1795629614938523000),
        Some(1795629614939552000),
        Some(1795629615054189000),
        1795629615054189000,
        6,
        82,
    ),
    (
        "192.168.60.200:37630",
        "192.168.60.12",
        Some(1795629616158856000),
        Some(1795629616159506000),
        Some(1795629616251724000),
        1795629616251724000,
        6,
        82,
    ),
    (
        "192.168.60.200:37644",
        "192.168.60.11",
        Some(1795629617101426000),
        Some(1795629617102123000),
        Some(1795629617203509000),
        1795629617203509000,
        6,
        82,
    ),
    (
        "192.168.60.200:37648",
        "192.168.60.11",
        Some(1795629618147148000),
        Some(1795629618147755000),
        Some(1795629618239900000),
        1795629618239900000,
        6,
        82,
    ),
    (
        "192.168.60.200:37664",
        "192.168.60.12",
        Some(1795629619810467000),
        Some(1795629619811506000),
        Some(1795629619995879000),
        1795629619995879000,
        7,
        82,
    ),
    (
        "192.168.60.200:37680",
        "192.168.60.11",
        Some(1795629621368368000),
        Some(1795629621377560000),
        Some(1795629621524543000),
        1795629621524543000,
        7,
        82,
    ),
    (
        "192.168.60.200:37690",
        "192.168.60.13",
        Some(1795629622759616000),
        Some(1795629622760218000),
        Some(1795629622911432000),
        1795629622911432000,
        7,
        82,
    ),
    (
        "192.168.60.200:37700",
        "192.168.60.12",
        Some(1795629625228577000),
        Some(1795629625279603000),
        Some(1795629625539143000),
        1795629625539143000,
        5,
        82,
    ),
    (
        "192.168.60.200:36608",
        "192.168.60.11",
        Some(1795629627292103000),
        Some(1795629627299407000),
        Some(1795629627504524000),
        1795629627504524000,
        6,
        82,
    ),
    (
        "192.168.60.200:36616",
        "192.168.60.11",
        Some(1795629629094360000),
        Some(1795629629095248000),
        Some(1795629629244537000),
        1795629629244537000,
        7,
        82,
    ),
    (
        "192.168.60.200:36620",
        "192.168.60.12",
        Some(1795629631338179000),
        Some(1795629631338999000),
        Some(1795629631472161000),
        1795629631472161000,
        6,
        82,
    ),
    (
        "192.168.60.200:36622",
        "192.168.60.11",
        Some(1795629632089746000),
        Some(1795629632090656000),
        Some(1795629632161469000),
        1795629632161469000,
        6,
        82,
    ),
];

/// fixtures/tutorial/server1.pcap: `-s rr`, .2 then .3 added; ten sequential requests.
const TUTORIAL: &[Row] = &[
    (
        "172.25.254.67:56232",
        "172.25.67.3",
        Some(1795629504771811000),
        Some(1795629504802612000),
        Some(1795629505186674000),
        1795629505186674000,
        7,
        77,
    ),
    (
        "172.25.254.67:34746",
        "172.25.67.2",
        Some(1795629506975828000),
        Some(1795629506982133000),
        Some(1795629507234787000),
        1795629507234787000,
        7,
        77,
    ),
    (
        "172.25.254.67:34754",
        "172.25.67.3",
        Some(1795629509126590000),
        Some(1795629509127192000),
        Some(1795629509156490000),
        1795629509156490000,
        6,
        77,
    ),
    (
        "172.25.254.67:34770",
        "172.25.67.2",
        Some(1795629511330413000),
        Some(1795629511331167000),
        Some(1795629511588180000),
        1795629511588180000,
        7,
        77,
    ),
    (
        "172.25.254.67:34772",
        "172.25.67.3",
        Some(1795629513347321000),
        Some(1795629513347887000),
        Some(1795629513414813000),
        1795629513414813000,
        6,
        77,
    ),
    (
        "172.25.254.67:34786",
        "172.25.67.2",
        Some(1795629514761417000),
        Some(1795629514762914000),
        Some(1795629514957829000),
        1795629514957829000,
        7,
        77,
    ),
    (
        "172.25.254.67:38362",
        "172.25.67.3",
        Some(1795629517189881000),
        Some(1795629517201775000),
        Some(1795629517329648000),
        1795629517329648000,
        7,
        77,
    ),
    (
        "172.25.254.67:38368",
        "172.25.67.2",
        Some(1795629518934322000),
        Some(1795629518935221000),
        Some(1795629519110024000),
        1795629519110024000,
        7,
        77,
    ),
    (
        "172.25.254.67:38384",
        "172.25.67.3",
        Some(1795629521151675000),
        Some(1795629521153246000),
        Some(1795629521395325000),
        1795629521395325000,
        7,
        77,
    ),
    (
        "172.25.254.67:38390",
        "172.25.67.2",
        Some(1795629523245641000),
        Some(1795629523259203000),
        Some(1795629523503431000),
        1795629523503431000,
        7,
        77,
    ),
];

/// fixtures/wlc-long/director.pcap (lab/scenarios/wlc-long.sh).
const WLC_LONG: &[Row] = &[
    (
        "10.7.0.200:36432",
        "10.7.0.13",
        Some(1795631120511015000),
        Some(1795631120535519000),
        Some(1795631126723850000),
        1795631126723850000,
        6,
        88,
    ),
    (
        "10.7.0.200:36446",
        "10.7.0.12",
        Some(1795631121030306000),
        Some(1795631121033080000),
        Some(1795631126220626000),
        1795631126220626000,
        6,
        88,
    ),
    (
        "10.7.0.200:36452",
        "10.7.0.11",
        Some(1795631121594162000),
        Some(1795631121595340000),
        Some(1795631125764374000),
        1795631125764374000,
        6,
        88,
    ),
    (
        "10.7.0.200:36468",
        "10.7.0.13",
        Some(1795631122203020000),
        Some(1795631122204062000),
        Some(1795631125376260000),
        1795631125376260000,
        6,
        88,
    ),
    (
        "10.7.0.200:36484",
        "10.7.0.13",
        Some(1795631122738348000),
        Some(1795631122739276000),
        Some(1795631128878857000),
        1795631128878857000,
        6,
        88,
    ),
    (
        "10.7.0.200:36490",
        "10.7.0.12",
        Some(1795631123576771000),
        Some(1795631123577672000),
        Some(1795631128889860000),
        1795631128889860000,
        6,
        88,
    ),
    (
        "10.7.0.200:36504",
        "10.7.0.11",
        Some(1795631124309349000),
        Some(1795631124310452000),
        Some(1795631128534779000),
        1795631128534779000,
        6,
        88,
    ),
    (
        "10.7.0.200:36516",
        "10.7.0.13",
        Some(1795631124832577000),
        Some(1795631124833660000),
        Some(1795631128007468000),
        1795631128007468000,
        6,
        88,
    ),
];

/// fixtures/sh-clients/director.pcap (lab/scenarios/sh-clients.sh).
const SH_CLIENTS: &[Row] = &[
    (
        "10.7.0.200:35568",
        "10.7.0.12",
        Some(1795631157012436000),
        Some(1795631157014051000),
        Some(1795631157048307000),
        1795631157048307000,
        6,
        74,
    ),
    (
        "10.7.0.201:41616",
        "10.7.0.11",
        Some(1795631157431093000),
        Some(1795631157432878000),
        Some(1795631157466829000),
        1795631157466829000,
        6,
        74,
    ),
    (
        "10.7.0.202:42810",
        "10.7.0.12",
        Some(1795631157863389000),
        Some(1795631157865341000),
        Some(1795631157888452000),
        1795631157888452000,
        6,
        74,
    ),
    (
        "10.7.0.203:59212",
        "10.7.0.11",
        Some(1795631158644853000),
        Some(1795631158671141000),
        Some(1795631158736917000),
        1795631158736917000,
        6,
        74,
    ),
    (
        "10.7.0.204:58090",
        "10.7.0.13",
        Some(1795631159170961000),
        Some(1795631159173117000),
        Some(1795631159209563000),
        1795631159209563000,
        6,
        74,
    ),
    (
        "10.7.0.205:56928",
        "10.7.0.11",
        Some(1795631159419743000),
        Some(1795631159421163000),
        Some(1795631159436096000),
        1795631159436096000,
        6,
        74,
    ),
    (
        "10.7.0.206:57038",
        "10.7.0.13",
        Some(1795631159636946000),
        Some(1795631159637678000),
        Some(1795631159654397000),
        1795631159654397000,
        6,
        74,
    ),
    (
        "10.7.0.207:45062",
        "10.7.0.11",
        Some(1795631159847885000),
        Some(1795631159848813000),
        Some(1795631159864822000),
        1795631159864822000,
        6,
        74,
    ),
    (
        "10.7.0.200:56040",
        "10.7.0.12",
        Some(1795631160154296000),
        Some(1795631160154970000),
        Some(1795631160190139000),
        1795631160190139000,
        6,
        74,
    ),
    (
        "10.7.0.201:33912",
        "10.7.0.11",
        Some(1795631160537742000),
        Some(1795631160538671000),
        Some(1795631160560025000),
        1795631160560025000,
        6,
        74,
    ),
    (
        "10.7.0.202:57618",
        "10.7.0.12",
        Some(1795631160988142000),
        Some(1795631160989085000),
        Some(1795631161037382000),
        1795631161037382000,
        6,
        74,
    ),
    (
        "10.7.0.203:59228",
        "10.7.0.11",
        Some(1795631161287020000),
        Some(1795631161292101000),
        Some(1795631161322629000),
        1795631161322629000,
        6,
        74,
    ),
    (
        "10.7.0.204:58100",
        "10.7.0.13",
        Some(1795631161766087000),
        Some(1795631161766998000),
        Some(1795631161816046000),
        1795631161816046000,
        6,
        74,
    ),
    (
        "10.7.0.205:56930",
        "10.7.0.11",
        Some(1795631162128064000),
        Some(1795631162131885000),
        Some(1795631162167166000),
        1795631162167166000,
        6,
        74,
    ),
    (
        "10.7.0.206:57046",
        "10.7.0.13",
        Some(1795631162487030000),
        Some(1795631162488163000),
        Some(1795631162522616000),
        1795631162522616000,
        6,
        74,
    ),
    (
        "10.7.0.207:45076",
        "10.7.0.11",
        Some(1795631162861486000),
        Some(1795631162862015000),
        Some(1795631162891872000),
        1795631162891872000,
        6,
        74,
    ),
];

/// fixtures/persistence/director.pcap (lab/scenarios/persistence.sh).
const PERSISTENCE: &[Row] = &[
    (
        "10.7.0.200:35434",
        "10.7.0.12",
        Some(1795631189546909000),
        Some(1795631189548641000),
        Some(1795631189580815000),
        1795631189580815000,
        6,
        74,
    ),
    (
        "10.7.0.201:46588",
        "10.7.0.11",
        Some(1795631189902413000),
        Some(1795631189903438000),
        Some(1795631189936869000),
        1795631189936869000,
        6,
        74,
    ),
    (
        "10.7.0.200:35444",
        "10.7.0.12",
        Some(1795631190272637000),
        Some(1795631190273460000),
        Some(1795631190295481000),
        1795631190295481000,
        6,
        74,
    ),
    (
        "10.7.0.201:46598",
        "10.7.0.11",
        Some(1795631190645062000),
        Some(1795631190646027000),
        Some(1795631190668490000),
        1795631190668490000,
        6,
        74,
    ),
    (
        "10.7.0.200:35452",
        "10.7.0.12",
        Some(1795631191039419000),
        Some(1795631191040821000),
        Some(1795631191064850000),
        1795631191064850000,
        6,
        74,
    ),
    (
        "10.7.0.201:46610",
        "10.7.0.11",
        Some(1795631191362879000),
        Some(1795631191363352000),
        Some(1795631191378836000),
        1795631191378836000,
        6,
        74,
    ),
    (
        "10.7.0.200:35468",
        "10.7.0.12",
        Some(1795631191598016000),
        Some(1795631191598549000),
        Some(1795631191615062000),
        1795631191615062000,
        6,
        74,
    ),
    (
        "10.7.0.201:46614",
        "10.7.0.11",
        Some(1795631191952327000),
        Some(1795631191952865000),
        Some(1795631191968781000),
        1795631191968781000,
        6,
        74,
    ),
    (
        "10.7.0.200:35484",
        "10.7.0.12",
        Some(1795631192181781000),
        Some(1795631192182504000),
        Some(1795631192202012000),
        1795631192202012000,
        6,
        74,
    ),
    (
        "10.7.0.201:46620",
        "10.7.0.11",
        Some(1795631192451996000),
        Some(1795631192452742000),
        Some(1795631192468687000),
        1795631192468687000,
        6,
        74,
    ),
];

fn connections(rows: &[Row]) -> Vec<ConnObs> {
    rows.iter()
        .map(
            |&(client, rs, syn, ack, fin, last, packets, bytes)| ConnObs {
                client: client.parse().unwrap(),
                rs: Some(rs.parse().unwrap()),
                start_ns: syn.unwrap_or(last),
                last_ns: last,
                tcp: Some(TcpMarks {
                    syn_ns: syn,
                    ack_ns: ack,
                    fin_ns: fin,
                    rst_ns: None,
                }),
                packets_to_server: packets,
                bytes_to_server: bytes,
                packets_to_client: 0,
                bytes_to_client: 0,
                response_time_ns: None,
                first_frame: None,
            },
        )
        .collect()
}

/// The configuration as `ipvsadm -Sn` prints it (rules.txt): sorted, so the order is unknown.
fn sorted_config(scheduler: Scheduler, port: u16, servers: &[(&str, u32)]) -> ServiceConfig {
    ServiceConfig {
        scheduler,
        persistence_s: None,
        netmask_prefix: None,
        sh_port: false,
        servers: servers
            .iter()
            .map(|&(ip, weight)| Server {
                addr: SocketAddr::new(ip.parse().unwrap(), port),
                weight,
            })
            .collect(),
        order_known: false,
    }
}

fn run(vip: &str, cfg: ServiceConfig, rows: &[Row]) -> lvscheck::fairness::ServiceReport {
    let report = analyse(&FairnessInput {
        services: vec![ServiceObs {
            proto: Proto::Tcp,
            vip: vip.parse().unwrap(),
            mark: None,
            config: Some(cfg),
            connections: connections(rows),
        }],
        capture_span: None,
        timeouts: Default::default(),
    });
    report.services.into_iter().next().unwrap()
}

fn ips(order: &[SocketAddr]) -> Vec<IpAddr> {
    order.iter().map(|a| a.ip()).collect()
}

/// fixtures/wrr's rules: `-s wrr` on 192.168.60.80:8080, weights 3, 2, 1, listed sorted.
fn wrr_config() -> ServiceConfig {
    sorted_config(
        Scheduler::Wrr,
        8080,
        &[
            ("192.168.60.11", 3),
            ("192.168.60.12", 2),
            ("192.168.60.13", 1),
        ],
    )
}

#[test]
fn lab_wrr_conforms_fully_and_the_kernel_order_is_recovered() {
    let cfg = wrr_config();
    let svc = run("192.168.60.80:8080", cfg, WRR);
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!((c.decisions, c.matched, c.mismatches), (30, 30, 0));
    // README: "kernel list order rs-c, rs-b, rs-a" (the reverse of the adds).
    let want: Vec<IpAddr> = ["192.168.60.13", "192.168.60.12", "192.168.60.11"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ips(&c.order), want);
    assert!(!c
        .limitations
        .iter()
        .any(|l| l.contains("does not begin with a freshly built")));
    // stats.txt / conns.txt: 15 / 10 / 5 against the promised 3:2:1 exactly.
    let conns: Vec<u64> = svc.servers.iter().map(|s| s.connections).collect();
    assert_eq!(conns, vec![15, 10, 5]);
    assert_eq!(svc.fairness.jain, Some(1.0));
    assert_eq!(svc.fairness.chi_square.as_ref().unwrap().p_value, 1.0);
    assert_eq!(svc.conforms(), Some(true));
}

/// `verify` (and `fairness` without `--charts`) skip the per-connection timeline only the charts
/// draw: the report is otherwise the same, the drift windows included.
#[test]
fn lab_wrr_report_is_the_same_without_the_timeline() {
    let cfg = wrr_config();
    let conns = connections(WRR);
    let input = |timeline| {
        let table: ConnTable = conns.iter().collect();
        analyse_observed(
            &FairnessInput {
                services: vec![ServiceObs {
                    proto: Proto::Tcp,
                    vip: "192.168.60.80:8080".parse().unwrap(),
                    mark: None,
                    config: Some(cfg.clone()),
                    connections: table,
                }],
                capture_span: None,
                timeouts: Default::default(),
            },
            timeline,
        )
    };
    let (kept, skipped) = (input(Timeline::Keep), input(Timeline::Skip));
    // The 30 connections the director tunnelled (README), one timeline entry each.
    assert_eq!(kept.services[0].timeline.len(), 30);
    assert!(skipped.services[0].timeline.is_empty());
    let windows: u64 = skipped.services[0]
        .drift
        .windows
        .iter()
        .flat_map(|w| &w.counts)
        .sum();
    assert_eq!(windows, 30);
    assert_eq!(
        serde_json::to_string(&kept).unwrap(),
        serde_json::to_string(&skipped).unwrap()
    );
}

#[test]
fn lab_tutorial_rr_conforms_fully() {
    let cfg = sorted_config(Scheduler::Rr, 80, &[("172.25.67.2", 1), ("172.25.67.3", 1)]);
    let svc = run("172.25.67.100:80", cfg, TUTORIAL);
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!((c.decisions, c.matched, c.mismatches), (10, 10, 0));
    // README: "the kernel list has server3 first".
    let want: Vec<IpAddr> = ["172.25.67.3", "172.25.67.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ips(&c.order), want);
    assert_eq!(svc.conforms(), Some(true));
}

/// The director's own connection table at the end of each recording (`ipvsadm -Lnc`,
/// conns.txt): client, real server, state, time left before the entry expires.
const WRR_CONNS: &[(&str, &str, &str, &str)] = &[
    ("192.168.60.200:37648", "192.168.60.11", "FIN_WAIT", "01:44"),
    ("192.168.60.200:36608", "192.168.60.11", "FIN_WAIT", "01:53"),
    ("192.168.60.200:36620", "192.168.60.12", "FIN_WAIT", "01:57"),
    ("192.168.60.200:42884", "192.168.60.11", "FIN_WAIT", "01:29"),
    ("192.168.60.200:43352", "192.168.60.11", "FIN_WAIT", "01:21"),
    ("192.168.60.200:37680", "192.168.60.11", "FIN_WAIT", "01:47"),
    ("192.168.60.200:37664", "192.168.60.12", "FIN_WAIT", "01:45"),
    ("192.168.60.200:42842", "192.168.60.12", "FIN_WAIT", "01:23"),
    ("192.168.60.200:43334", "192.168.60.13", "FIN_WAIT", "01:18"),
    ("192.168.60.200:52558", "192.168.60.11", "FIN_WAIT", "01:35"),
    ("192.168.60.200:37644", "192.168.60.11", "FIN_WAIT", "01:43"),
    ("192.168.60.200:42838", "192.168.60.11", "FIN_WAIT", "01:22"),
    ("192.168.60.200:43342", "192.168.60.12", "FIN_WAIT", "01:20"),
    ("192.168.60.200:52578", "192.168.60.12", "FIN_WAIT", "01:39"),
    ("192.168.60.200:36622", "192.168.60.11", "FIN_WAIT", "01:57"),
    ("192.168.60.200:37630", "192.168.60.12", "FIN_WAIT", "01:42"),
    ("192.168.60.200:42852", "192.168.60.11", "FIN_WAIT", "01:24"),
    ("192.168.60.200:42892", "192.168.60.12", "FIN_WAIT", "01:31"),
    ("192.168.60.200:37690", "192.168.60.13", "FIN_WAIT", "01:48"),
    ("192.168.60.200:52544", "192.168.60.12", "FIN_WAIT", "01:35"),
    ("192.168.60.200:42874", "192.168.60.11", "FIN_WAIT", "01:28"),
    ("192.168.60.200:52594", "192.168.60.11", "FIN_WAIT", "01:39"),
    ("192.168.60.200:52568", "192.168.60.11", "FIN_WAIT", "01:37"),
    ("192.168.60.200:52606", "192.168.60.13", "FIN_WAIT", "01:40"),
    ("192.168.60.200:52530", "192.168.60.11", "FIN_WAIT", "01:32"),
    ("192.168.60.200:42868", "192.168.60.12", "FIN_WAIT", "01:26"),
    ("192.168.60.200:36616", "192.168.60.11", "FIN_WAIT", "01:55"),
    ("192.168.60.200:42860", "192.168.60.13", "FIN_WAIT", "01:25"),
    ("192.168.60.200:52540", "192.168.60.13", "FIN_WAIT", "01:33"),
    ("192.168.60.200:37700", "192.168.60.12", "FIN_WAIT", "01:51"),
];
const TUTORIAL_CONNS: &[(&str, &str, &str, &str)] = &[
    ("172.25.254.67:56232", "172.25.67.3", "FIN_WAIT", "01:39"),
    ("172.25.254.67:38368", "172.25.67.2", "FIN_WAIT", "01:53"),
    ("172.25.254.67:38390", "172.25.67.2", "FIN_WAIT", "01:58"),
    ("172.25.254.67:34772", "172.25.67.3", "FIN_WAIT", "01:48"),
    ("172.25.254.67:34786", "172.25.67.2", "FIN_WAIT", "01:49"),
    ("172.25.254.67:38384", "172.25.67.3", "FIN_WAIT", "01:56"),
    ("172.25.254.67:38362", "172.25.67.3", "FIN_WAIT", "01:52"),
    ("172.25.254.67:34770", "172.25.67.2", "FIN_WAIT", "01:46"),
    ("172.25.254.67:34746", "172.25.67.2", "FIN_WAIT", "01:41"),
    ("172.25.254.67:34754", "172.25.67.3", "FIN_WAIT", "01:43"),
];

/// The same for the other recordings; persistence templates (client port 0) left out.
const WLC_LONG_CONNS: &[(&str, &str, &str, &str)] = &[
    ("10.7.0.200:36504", "10.7.0.11", "FIN_WAIT", "01:59"),
    ("10.7.0.200:36432", "10.7.0.13", "FIN_WAIT", "01:57"),
    ("10.7.0.200:36452", "10.7.0.11", "FIN_WAIT", "01:56"),
    ("10.7.0.200:36516", "10.7.0.13", "FIN_WAIT", "01:58"),
    ("10.7.0.200:36484", "10.7.0.13", "FIN_WAIT", "01:59"),
    ("10.7.0.200:36490", "10.7.0.12", "FIN_WAIT", "01:59"),
    ("10.7.0.200:36468", "10.7.0.13", "FIN_WAIT", "01:55"),
    ("10.7.0.200:36446", "10.7.0.12", "FIN_WAIT", "01:56"),
];
const SH_CLIENTS_CONNS: &[(&str, &str, &str, &str)] = &[
    ("10.7.0.205:56928", "10.7.0.11", "FIN_WAIT", "01:56"),
    ("10.7.0.207:45062", "10.7.0.11", "FIN_WAIT", "01:56"),
    ("10.7.0.200:56040", "10.7.0.12", "FIN_WAIT", "01:56"),
    ("10.7.0.201:33912", "10.7.0.11", "FIN_WAIT", "01:57"),
    ("10.7.0.200:35568", "10.7.0.12", "FIN_WAIT", "01:53"),
    ("10.7.0.202:42810", "10.7.0.12", "FIN_WAIT", "01:54"),
    ("10.7.0.203:59228", "10.7.0.11", "FIN_WAIT", "01:57"),
    ("10.7.0.202:57618", "10.7.0.12", "FIN_WAIT", "01:57"),
    ("10.7.0.204:58090", "10.7.0.13", "FIN_WAIT", "01:55"),
    ("10.7.0.207:45076", "10.7.0.11", "FIN_WAIT", "01:59"),
    ("10.7.0.201:41616", "10.7.0.11", "FIN_WAIT", "01:54"),
    ("10.7.0.206:57046", "10.7.0.13", "FIN_WAIT", "01:59"),
    ("10.7.0.206:57038", "10.7.0.13", "FIN_WAIT", "01:56"),
    ("10.7.0.205:56930", "10.7.0.11", "FIN_WAIT", "01:58"),
    ("10.7.0.204:58100", "10.7.0.13", "FIN_WAIT", "01:58"),
    ("10.7.0.203:59212", "10.7.0.11", "FIN_WAIT", "01:55"),
];
const PERSISTENCE_CONNS: &[(&str, &str, &str, &str)] = &[
    ("10.7.0.200:35444", "10.7.0.12", "FIN_WAIT", "01:57"),
    ("10.7.0.200:35452", "10.7.0.12", "FIN_WAIT", "01:58"),
    ("10.7.0.201:46614", "10.7.0.11", "FIN_WAIT", "01:59"),
    ("10.7.0.200:35484", "10.7.0.12", "FIN_WAIT", "01:59"),
    ("10.7.0.200:35468", "10.7.0.12", "FIN_WAIT", "01:58"),
    ("10.7.0.200:35434", "10.7.0.12", "FIN_WAIT", "01:56"),
    ("10.7.0.201:46610", "10.7.0.11", "FIN_WAIT", "01:58"),
    ("10.7.0.201:46620", "10.7.0.11", "FIN_WAIT", "01:59"),
    ("10.7.0.201:46598", "10.7.0.11", "FIN_WAIT", "01:57"),
    ("10.7.0.201:46588", "10.7.0.11", "FIN_WAIT", "01:57"),
];

/// Checks the rebuilt entries against `ipvsadm -Lnc`: same server and state for every
/// entry, and expiry times that differ from the kernel's by one common offset (the unknown
/// moment of the snapshot; ipvsadm truncates to whole seconds).
fn entries_agree(rows: &[Row], table: &[(&str, &str, &str, &str)]) {
    let conns = connections(rows);
    let timeouts = Default::default();
    let last = conns.iter().map(|c| c.last_ns).max().unwrap();
    let mut offsets = Vec::new();
    for &(client, rs, state, expire) in table {
        let c = conns
            .iter()
            .find(|c| c.client == client.parse::<SocketAddr>().unwrap())
            .unwrap_or_else(|| panic!("{client} is in conns.txt but not in the capture"));
        assert_eq!(c.rs, Some(rs.parse().unwrap()), "{client}");
        let life = EntryLife::from_conn(c, Proto::Tcp, &timeouts);
        assert_eq!(
            life.state_at(last).map(|s| s.ipvs_name()),
            Some(state),
            "{client}"
        );
        let (m, s) = expire.split_once(':').unwrap();
        let left_ns = (m.parse::<i64>().unwrap() * 60 + s.parse::<i64>().unwrap()) * 1_000_000_000;
        offsets.push(life.expires_ns - left_ns);
    }
    assert_eq!(offsets.len(), conns.len());
    let spread = offsets.iter().max().unwrap() - offsets.iter().min().unwrap();
    assert!(
        spread < 1_100_000_000,
        "expiry offsets spread over {spread} ns"
    );
}

#[test]
fn lab_entries_match_the_directors_connection_table() {
    entries_agree(WRR, WRR_CONNS);
    entries_agree(TUTORIAL, TUTORIAL_CONNS);
    entries_agree(WLC_LONG, WLC_LONG_CONNS);
    entries_agree(SH_CLIENTS, SH_CLIENTS_CONNS);
    entries_agree(PERSISTENCE, PERSISTENCE_CONNS);
}

#[test]
fn lab_counters_match_ipvsadm_at_the_end_of_the_recording() {
    // rules-nosort.txt: ActiveConn 0 everywhere; InActConn 15 / 10 / 5 (wrr), 5 / 5 (rr).
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let conns = connections(WRR);
    let end = conns.iter().map(|c| c.last_ns).max().unwrap() + 1_000_000_000;
    assert_eq!(
        counters_at(&conns, Proto::Tcp, &Default::default(), end),
        vec![
            (ip("192.168.60.11"), 0, 15),
            (ip("192.168.60.12"), 0, 10),
            (ip("192.168.60.13"), 0, 5)
        ]
    );
    let conns = connections(TUTORIAL);
    let end = conns.iter().map(|c| c.last_ns).max().unwrap() + 1_000_000_000;
    assert_eq!(
        counters_at(&conns, Proto::Tcp, &Default::default(), end),
        vec![(ip("172.25.67.2"), 0, 5), (ip("172.25.67.3"), 0, 5)]
    );
}

fn persistent_config(mut cfg: ServiceConfig, p: u32) -> ServiceConfig {
    cfg.persistence_s = Some(p);
    cfg
}

fn ip_list(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn lab_wlc_with_overlapping_connections_conforms() {
    // rs1 .11 (w 1), rs2 .12 (w 1), rs3 .13 (w 2) added in that order; eight slow requests
    // half a second apart, each scheduled while earlier ones are still active.
    let cfg = sorted_config(
        Scheduler::Wlc,
        80,
        &[("10.7.0.11", 1), ("10.7.0.12", 1), ("10.7.0.13", 2)],
    );
    let svc = run("10.7.0.100:80", cfg, WLC_LONG);
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!(
        (c.decisions, c.matched, c.mismatches),
        (8, 8, 0),
        "{:?}",
        c.first_mismatches
    );
    assert_eq!(svc.conforms(), Some(true));
}

#[test]
fn lab_sh_clients_conform_from_the_hash_alone() {
    let cfg = sorted_config(
        Scheduler::Sh,
        80,
        &[("10.7.0.11", 1), ("10.7.0.12", 1), ("10.7.0.13", 1)],
    );
    let svc = run("10.7.0.100:80", cfg, SH_CLIENTS);
    let c = svc.conformance.as_ref().unwrap();
    assert_eq!(
        (c.decisions, c.matched, c.mismatches),
        (16, 16, 0),
        "{:?}",
        c.first_mismatches
    );
    // The list order is the reverse of the adds.
    assert_eq!(
        ips(&c.order),
        ip_list(&["10.7.0.13", "10.7.0.12", "10.7.0.11"])
    );
}

#[test]
fn lab_persistence_keeps_each_client_and_rr_does_not_advance() {
    let cfg = persistent_config(
        sorted_config(Scheduler::Rr, 80, &[("10.7.0.11", 1), ("10.7.0.12", 1)]),
        120,
    );
    let svc = run("10.7.0.100:80", cfg, PERSISTENCE);
    let c = svc.conformance.as_ref().unwrap();
    // Two scheduling decisions (each client's first connection), eight by template.
    assert_eq!((c.decisions, c.matched), (2, 2));
    assert_eq!((c.persistent, c.persistent_matched), (8, 8));
    assert_eq!(c.mismatches, 0);
    assert_eq!(ips(&c.order), ip_list(&["10.7.0.12", "10.7.0.11"]));
}
