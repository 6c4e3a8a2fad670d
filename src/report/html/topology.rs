//! The deployment as a picture, inline SVG: the clients, the director with its VIPs, the real
//! servers with their addresses and MACs, the tunnel to each (its kind from
//! [`crate::topology::Topology::tunnels`]), and which capture was taken on which host. Requests
//! go client -> director -> (tunnel) -> real server; replies go from each real server straight
//! back to the client, drawn dashed along the bottom.

use std::fmt::Write;
use std::net::IpAddr;

use super::escape::h;
use crate::checks::{Finding, Status};
use crate::flows::Analysis;
use crate::topology::{Role, Vantage};

/// Width of the drawing (its viewBox); the page scales it.
const WIDTH: i32 = 1176;
const BOX_W: i32 = 290;
const LINE_H: i32 = 19;
/// Characters of a line that fit in a box; longer text is cut, whole in its tooltip.
const FIT: usize = 38;
/// Hosts drawn one by one in a column; the rest are counted in one more box.
const MAX_HOSTS: usize = 8;
const COLUMN_X: [i32; 3] = [16, 435, 854];
/// The page's failure red and warning amber.
const FAIL: &str = "#c62828";
const WARN: &str = "#b07800";

/// One line of a host box: its text and its class (`title`, `addr`, `mac`, `cap`).
struct Line {
    text: String,
    class: &'static str,
    /// The whole text for the tooltip, when the line shows less.
    tip: Option<String>,
}

struct HostBox {
    x: i32,
    y: i32,
    lines: Vec<Line>,
    /// The worst finding about this host, when one failed or warned: its box is outlined in
    /// that status's colour.
    flag: Option<Status>,
    /// `client`, `director`, `rs` or `none` (nothing identified): the box's colour.
    kind: &'static str,
}

impl HostBox {
    fn height(&self) -> i32 {
        14 + LINE_H * self.lines.len() as i32
    }
    fn mid_y(&self) -> i32 {
        self.y + self.height() / 2
    }
}

fn line(text: impl Into<String>, class: &'static str) -> Line {
    Line {
        text: text.into(),
        class,
        tip: None,
    }
}

/// The captures taken on a host, one line each (`captured: server1.pcap`): the file's name
/// without its folders (the same for all, as a rule), and its interface when it has several.
fn capture_lines(analysis: &Analysis, vantages: &[&Vantage]) -> Vec<Line> {
    vantages
        .iter()
        .map(|v| {
            let label = crate::report::flows::vantage_label(analysis, v.id);
            let folder = analysis
                .captures
                .iter()
                .find(|c| c.capture == v.id.capture)
                .and_then(|c| c.file.rfind('/').map(|i| &c.file[..=i]))
                .map(crate::escape::terminal);
            let short = folder
                .and_then(|f| label.strip_prefix(f.as_ref()))
                .filter(|rest| !rest.is_empty())
                .unwrap_or(&label);
            Line {
                tip: Some(format!("captured: {label}")),
                ..line(format!("captured: {short}"), "cap")
            }
        })
        .collect()
}

fn macs_line(macs: &[crate::topology::MacAddr]) -> Option<Line> {
    if macs.is_empty() {
        return None;
    }
    let list: Vec<String> = macs.iter().map(|m| m.to_string()).collect();
    Some(line(format!("MAC {}", list.join(", ")), "mac"))
}

/// Lays a column of boxes out from `top`, each `gap` apart; returns the bottom.
fn stack(boxes: &mut [HostBox], top: i32, gap: i32) -> i32 {
    let mut y = top;
    for b in boxes.iter_mut() {
        b.y = y;
        y += b.height() + gap;
    }
    y - gap
}

/// The checks that failed or warned about `addr` (a finding's `host` is the address, then
/// its MAC in brackets), as a line for its box, and the worst status.
fn flagged(addr: IpAddr, findings: &[&Finding]) -> Option<(Line, Status)> {
    let addr = addr.to_string();
    let mut about: Vec<&Finding> = findings
        .iter()
        .copied()
        .filter(|f| f.severity >= Status::Warn)
        .filter(|f| {
            f.host
                .as_deref()
                .is_some_and(|h| h.split(' ').next() == Some(addr.as_str()))
        })
        .collect();
    about.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let worst = about.first()?.severity;
    let mut checks: Vec<&str> = about.iter().map(|f| f.check).collect();
    checks.dedup();
    let text = format!("{} {}", worst.as_str().to_uppercase(), checks.join(", "));
    Some((line(text, "flag"), worst))
}

/// Adds the finding line to a host's box and flags it.
fn flag(b: &mut HostBox, addr: IpAddr, findings: &[&Finding]) {
    if let Some((l, status)) = flagged(addr, findings) {
        b.lines.insert(2.min(b.lines.len()), l);
        b.flag = Some(status);
    }
}

/// The inline SVG of the deployment, and below it the captures no host box holds; hosts that
/// `findings` (failures and warnings) name are outlined in their colour, with the checks.
pub fn diagram(analysis: &Analysis, findings: &[&Finding]) -> String {
    let topo = &analysis.topology;
    let taken = |role: Role, addr: Option<IpAddr>| -> Vec<&Vantage> {
        topo.vantages
            .iter()
            .filter(|v| v.role == role && (addr.is_none() || v.address == addr))
            .collect()
    };
    let one_director = topo.directors.len() == 1;
    let vips: Vec<String> = topo.vips.iter().map(|v| v.addr.to_string()).collect();

    // Clients: one box for all of them, with the client captures.
    let mut client_lines = vec![line(
        crate::checks::verdict::plural(topo.clients.len(), "client", "clients"),
        "title",
    )];
    for c in topo.clients.iter().take(MAX_HOSTS) {
        client_lines.push(line(c.to_string(), "addr"));
    }
    if topo.clients.len() > MAX_HOSTS {
        client_lines.push(line(
            format!("and {} more", topo.clients.len() - MAX_HOSTS),
            "mac",
        ));
    }
    client_lines.extend(capture_lines(analysis, &taken(Role::Client, None)));
    let mut clients = vec![HostBox {
        x: COLUMN_X[0],
        y: 0,
        lines: client_lines,
        flag: None,
        kind: if topo.clients.is_empty() {
            "none"
        } else {
            "client"
        },
    }];

    // Directors, each with the VIPs and its captures (a director capture that names no
    // address belongs to the only director, when there is one).
    let mut directors: Vec<HostBox> = topo
        .directors
        .iter()
        .map(|d| {
            let mut lines = vec![line("director", "title"), line(d.addr.to_string(), "addr")];
            lines.extend(macs_line(&d.macs));
            if !vips.is_empty() {
                lines.push(line(format!("VIP {}", vips.join(", ")), "addr"));
            }
            let mut caps = taken(Role::Director, Some(d.addr));
            if one_director {
                caps.extend(
                    taken(Role::Director, None)
                        .into_iter()
                        .filter(|v| v.address.is_none()),
                );
            }
            lines.extend(capture_lines(analysis, &caps));
            let mut b = HostBox {
                x: COLUMN_X[1],
                y: 0,
                lines,
                flag: None,
                kind: "director",
            };
            flag(&mut b, d.addr, findings);
            b
        })
        .collect();
    if directors.is_empty() {
        let mut lines = vec![line("director: not identified", "title")];
        if !vips.is_empty() {
            lines.push(line(format!("VIP {}", vips.join(", ")), "addr"));
        }
        lines.extend(capture_lines(analysis, &taken(Role::Director, None)));
        directors.push(HostBox {
            x: COLUMN_X[1],
            y: 0,
            lines,
            flag: None,
            kind: "none",
        });
    }

    // Real servers, each with its tunnel kind and its captures.
    let mut servers: Vec<HostBox> = topo
        .real_servers
        .iter()
        .take(MAX_HOSTS)
        .map(|rs| {
            let mut lines = vec![
                line("real server", "title"),
                line(rs.addr.to_string(), "addr"),
            ];
            lines.extend(macs_line(&rs.macs));
            if let Some(e) = topo.tunnels.get(&rs.addr) {
                lines.push(line(format!("decapsulates on {}", e.device()), "mac"));
            }
            lines.extend(capture_lines(
                analysis,
                &taken(Role::RealServer, Some(rs.addr)),
            ));
            let mut b = HostBox {
                x: COLUMN_X[2],
                y: 0,
                lines,
                flag: None,
                kind: "rs",
            };
            flag(&mut b, rs.addr, findings);
            b
        })
        .collect();
    if topo.real_servers.len() > MAX_HOSTS {
        servers.push(HostBox {
            x: COLUMN_X[2],
            y: 0,
            lines: vec![line(
                format!(
                    "and {} more real servers",
                    topo.real_servers.len() - MAX_HOSTS
                ),
                "title",
            )],
            flag: None,
            kind: "rs",
        });
    }
    if servers.is_empty() {
        servers.push(HostBox {
            x: COLUMN_X[2],
            y: 0,
            lines: vec![line("real servers: not identified", "title")],
            flag: None,
            kind: "none",
        });
    }

    // Columns: the tallest from the top, the others centred on it.
    let top = 40;
    let heights: Vec<i32> = [&clients, &directors, &servers]
        .iter()
        .map(|c| c.iter().map(|b| b.height() + 22).sum::<i32>() - 22)
        .collect();
    let tallest = *heights.iter().max().unwrap_or(&0);
    let mut bottom = top;
    for (column, height) in [&mut clients, &mut directors, &mut servers]
        .into_iter()
        .zip(&heights)
    {
        bottom = bottom.max(stack(column, top + (tallest - height) / 2, 22));
    }
    let lane = bottom + 36;
    let total_h = lane + 30;

    let mut svg = format!(
        "<svg class=\"topology\" role=\"img\" viewBox=\"0 0 {WIDTH} {total_h}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui, 'DejaVu Sans', sans-serif\">\
         <title>The deployment the captures show</title>\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" \
         fill=\"#1d232b\"/></marker><marker id=\"arrow-reply\" viewBox=\"0 0 10 10\" refX=\"9\" \
         refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#1a7f37\"/></marker></defs>\
         <text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"700\" fill=\"#5b6572\">clients</text>\
         <text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"700\" fill=\"#5b6572\">director</text>\
         <text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"700\" fill=\"#5b6572\">real servers</text>",
        COLUMN_X[0], COLUMN_X[1], COLUMN_X[2]
    );

    // Requests: clients -> each director.
    let client = &clients[0];
    for d in &directors {
        let (x1, y1, x2, y2) = (client.x + BOX_W, client.mid_y(), d.x - 4, d.mid_y());
        let _ = write!(
            svg,
            "<path d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#1d232b\" \
             stroke-width=\"2\" marker-end=\"url(#arrow)\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12.5\" text-anchor=\"middle\" fill=\"#1d232b\" \
             stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\">requests to the {}</text>",
            x1 + 60,
            x2 - 60,
            (x1 + x2) / 2 - 2,
            (y1 + y2) / 2 - 9,
            if vips.len() > 1 { "VIPs" } else { "VIP" }
        );
    }
    // Tunnels: the first director -> each real server, labelled with the tunnel's kind.
    let d = &directors[0];
    for (rs, host) in servers.iter().zip(
        topo.real_servers
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None)),
    ) {
        if rs.kind == "none" {
            continue;
        }
        // The tunnel's kind just before the arrow's head, where the curve runs level: one
        // label per server, clear of its neighbours' (boxes are taller than a line of text).
        // The box that counts the servers not drawn gets the arrow alone.
        let label = host.map(|h| {
            topo.tunnels
                .get(&h.addr)
                .map_or("tunnel".to_string(), |e| e.name())
        });
        let (x1, y1, x2, y2) = (d.x + BOX_W, d.mid_y(), rs.x - 4, rs.mid_y());
        let _ = write!(
            svg,
            "<path d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\" fill=\"none\" stroke=\"#0b5cad\" \
             stroke-width=\"2.5\" marker-end=\"url(#arrow)\"/>",
            x1 + 70,
            x2 - 70,
        );
        if let Some(label) = label {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"600\" \
                 text-anchor=\"end\" fill=\"#0b5cad\" stroke=\"#ffffff\" stroke-width=\"4\" \
                 paint-order=\"stroke\" class=\"tunnel\">{}</text>",
                x2 - 12,
                y2 - 7,
                h(&label)
            );
        }
    }
    // Replies: from each real server's right side down the right edge, then along the bottom
    // lane straight back to the clients: past the director, never through it.
    let edge = WIDTH - 8;
    let answering: Vec<&HostBox> = servers.iter().filter(|b| b.kind == "rs").collect();
    for rs in &answering {
        let _ = write!(
            svg,
            "<path d=\"M{},{y} L{edge},{y} L{edge},{lane}\" fill=\"none\" stroke=\"#1a7f37\" \
             stroke-width=\"1.6\" stroke-dasharray=\"6 4\"/>",
            rs.x + BOX_W,
            y = rs.mid_y(),
        );
    }
    if !answering.is_empty() {
        let cx = client.x + BOX_W / 2;
        let _ = write!(
            svg,
            "<path d=\"M{edge},{lane} L{cx},{lane} L{cx},{}\" fill=\"none\" stroke=\"#1a7f37\" \
             stroke-width=\"1.6\" stroke-dasharray=\"6 4\" marker-end=\"url(#arrow-reply)\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#1a7f37\">\
             replies from the VIP, straight to the client (not through the director)</text>",
            client.y + client.height() + 4,
            (cx + edge) / 2,
            lane - 7
        );
    }
    for b in clients.iter().chain(&directors).chain(&servers) {
        draw_box(&mut svg, b);
    }
    svg.push_str("</svg>");

    let mut out = format!("<figure class=\"diagram\">{svg}");
    let others: Vec<String> = topo
        .vantages
        .iter()
        .filter(|v| v.role == Role::Other)
        .map(|v| h(&crate::report::flows::vantage_label(analysis, v.id)).into_owned())
        .collect();
    out.push_str("<figcaption class=\"muted\">Arrows: requests (black), tunnelled requests (blue, with the tunnel's kind), replies (green, dashed).");
    if !others.is_empty() {
        let _ = write!(
            out,
            " Captures taken elsewhere (a mirror port, a router, or no LVS traffic): {}.",
            others.join(", ")
        );
    }
    out.push_str("</figcaption></figure>");
    out
}

fn draw_box(svg: &mut String, b: &HostBox) {
    let (fill, mut stroke) = match b.kind {
        "client" => ("#f5f7fa", "#5b6572"),
        "director" => ("#e7f0fb", "#0b5cad"),
        "rs" => ("#e6f4ea", "#1a7f37"),
        _ => ("#ffffff", "#9aa3ad"),
    };
    let mut width = "1.5";
    match b.flag {
        Some(Status::Fail) => (stroke, width) = (FAIL, "3.5"),
        Some(_) => (stroke, width) = (WARN, "3.5"),
        None => {}
    }
    let dash = if b.kind == "none" {
        " stroke-dasharray=\"5 4\""
    } else {
        ""
    };
    let _ = write!(
        svg,
        "<g class=\"host host-{}\"><rect x=\"{}\" y=\"{}\" width=\"{BOX_W}\" height=\"{}\" rx=\"8\" \
         fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/>",
        b.kind,
        b.x,
        b.y,
        b.height()
    );
    for (i, l) in b.lines.iter().enumerate() {
        let y = b.y + 22 + LINE_H * i as i32;
        let (size, weight, colour) = match l.class {
            "title" => (14, "700", "#1d232b"),
            "flag" if b.flag == Some(Status::Fail) => (13, "700", FAIL),
            "flag" => (13, "700", WARN),
            "addr" => (14, "400", "#1d232b"),
            "cap" => (12, "400", "#5b6572"),
            _ => (12, "400", "#5b6572"),
        };
        let shown: String = if l.text.chars().count() > FIT {
            l.text.chars().take(FIT - 1).chain(['…']).collect()
        } else {
            l.text.clone()
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{y}\" font-size=\"{size}\" font-weight=\"{weight}\" fill=\"{colour}\" \
             class=\"{}\"><title>{}</title>{}</text>",
            b.x + 12,
            l.class,
            h(l.tip.as_ref().unwrap_or(&l.text)),
            h(&shown)
        );
    }
    svg.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::flagged;
    use crate::checks::{Finding, Status};

    fn finding(check: &'static str, severity: Status, host: &str) -> Finding {
        Finding {
            check,
            severity,
            summary: String::new(),
            host: Some(host.into()),
            count: 1,
            out_of: None,
            evidence: Vec::new(),
            display_filter: None,
            snapshot: Vec::new(),
            likely_cause: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn a_host_is_flagged_by_the_findings_about_its_own_address_only() {
        let fail = finding(
            "reply.present",
            Status::Fail,
            "10.7.0.12 (02:00:00:07:00:0c)",
        );
        let warn = finding("mtu", Status::Warn, "10.7.0.12");
        let note = finding("capture.time", Status::Info, "10.7.0.1");
        let other = finding("arp.vip", Status::Fail, "10.7.0.123 (02:00:00:07:00:7b)");
        let all = [&warn, &fail, &note, &other];
        let (line, status) = flagged("10.7.0.12".parse().unwrap(), &all).unwrap();
        assert_eq!(status, Status::Fail);
        assert_eq!(line.text, "FAIL reply.present, mtu");
        // A note is no flag, and 10.7.0.1 is not 10.7.0.12 nor 10.7.0.123.
        assert!(flagged("10.7.0.1".parse().unwrap(), &all).is_none());
        let (_, status) = flagged("10.7.0.123".parse().unwrap(), &all).unwrap();
        assert_eq!(status, Status::Fail);
    }
}
