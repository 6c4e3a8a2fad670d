//! Values of keepalived's keywords, read as its handlers read them: addresses and ports
//! (`inet_stosockaddr`), numbers (`read_unsigned`), true/false (`check_true_false`),
//! forwarding methods (`svr_forwarding_handler`) and group entries (`alloc_vsg_entry`). Each
//! returns what is wrong in words; the caller names the file and line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::{Entry, Family, Fwd, Method};
use crate::escape::printable;

/// Services one group entry may expand to; past this it is refused.
pub(super) const MAX_RANGE: u32 = 65_536;

/// `svr_forwarding_handler`: `NAT`, `DR` or `TUN`, then tunnel options (`w[0]` is the keyword).
pub(super) fn forwarding(w: &[String]) -> Result<Fwd, String> {
    let method = match w.get(1).map(String::as_str) {
        Some("NAT") => Method::Nat,
        Some("DR") => Method::Dr,
        Some("TUN") => Method::Tun,
        other => {
            return Err(format!(
                "{} `{}`: NAT, DR or TUN",
                printable(&w[0], 40),
                printable(other.unwrap_or(""), 40)
            ))
        }
    };
    let (mut tun_type, mut tun_port, mut csum) = ("ipip", 0u16, "nocsum");
    let mut i = 2;
    while let Some(opt) = w.get(i) {
        let value = w.get(i + 1).map(String::as_str);
        match opt.as_str() {
            "type" => {
                tun_type = match value {
                    Some("ipip") => "ipip",
                    Some("gue") => "gue",
                    Some("gre") => "gre",
                    v => {
                        return Err(format!(
                            "tunnel type `{}`: ipip, gue or gre",
                            printable(v.unwrap_or(""), 40)
                        ))
                    }
                };
                i += 2;
            }
            "port" => {
                tun_port = ranged("port", value.unwrap_or(""), 1, 65535)? as u16;
                i += 2;
            }
            "nocsum" | "csum" | "remcsum" => {
                csum = opt;
                i += 1;
            }
            other => return Err(format!("unknown tunnel option `{}`", printable(other, 40))),
        }
    }
    if (tun_type == "gue") != (tun_port != 0) {
        return Err("a gue tunnel needs `port N`, and only a gue tunnel has one".into());
    }
    if tun_type == "ipip" && csum != "nocsum" {
        return Err("ipip tunnels have no checksum option".into());
    }
    if tun_type == "gre" && csum == "remcsum" {
        return Err("gre tunnels have no remote checksum option".into());
    }
    Ok(Fwd {
        method,
        tun_type,
        tun_port,
    })
}

/// `inet_stosockaddr` of `alloc_vs`/`alloc_rs`/`alloc_ssvr`: an address and its port.
pub(super) fn addr_port(addr: &str, port: Option<&String>) -> Result<(IpAddr, u16), String> {
    Ok((address(addr)?, self::port(port)?))
}

/// A port, 1 to 65535; none, or all zeros, is 0 (keepalived passes no port then).
pub(super) fn port(p: Option<&String>) -> Result<u16, String> {
    match p.map(String::as_str) {
        None => Ok(0),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b == b'0') => Ok(0),
        Some(p) => Ok(ranged("port", p, 1, 65535)? as u16),
    }
}

/// `what`'s value `v`, a whole number within `min..=max`.
pub(super) fn ranged(what: &str, v: &str, min: u32, max: u32) -> Result<u32, String> {
    number(v, u64::from(min), u64::from(max))
        .map(|n| n as u32)
        .ok_or_else(|| {
            format!(
                "{} `{}`: a whole number from {min} to {max}",
                printable(what, 40),
                printable(v, 40)
            )
        })
}

/// `check_true_false` on the word after the keyword `w[0]`: the keyword alone is true.
pub(super) fn truth(w: &[String]) -> Result<bool, String> {
    match w.get(1).map(String::as_str) {
        None | Some("true" | "on" | "yes") => Ok(true),
        Some("false" | "off" | "no") => Ok(false),
        Some(v) => Err(format!(
            "{} `{}`: true, false, on, off, yes or no",
            printable(&w[0], 40),
            printable(v, 40)
        )),
    }
}

pub(super) fn extra(word: &str) -> String {
    format!("unexpected `{}`", printable(word, 40))
}

/// An address as keepalived's `inet_stosockaddr` reads it (IPv6 when it has a `:`); a range
/// (`-`) or subnet (`/`), which it would cut off without a word, is refused here.
pub(super) fn address(s: &str) -> Result<IpAddr, String> {
    if s.contains(['-', '/']) {
        return Err(format!(
            "`{}`: a range or subnet is only read in a virtual_server_group",
            printable(s, 60)
        ));
    }
    let parsed = if s.contains(':') {
        s.parse::<std::net::Ipv6Addr>().map(IpAddr::V6).ok()
    } else {
        s.parse::<std::net::Ipv4Addr>().map(IpAddr::V4).ok()
    };
    parsed.ok_or_else(|| {
        let hint = if s.contains('.') && s.contains(':') {
            " (keepalived wants the address and the port as two words)"
        } else {
            ""
        };
        format!("bad address `{}`{hint}", printable(s, 60))
    })
}

/// `read_unsigned`: decimal, leading blanks and a `+` allowed, within `min..=max`.
pub(super) fn number(s: &str, min: u64, max: u64) -> Option<u64> {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 19 {
        return None;
    }
    let n: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    (min..=max).contains(&n).then_some(n)
}

/// One line of a `virtual_server_group` (`alloc_vsg_entry`): `fwmark N [inet|inet6]`, or an
/// address, `A-N` (last byte, or last 16 bits in hex for IPv6), `A-B` or `A/LEN`, then an
/// optional port.
pub(super) fn group_entry(w: &[String]) -> Result<Entry, String> {
    if w[0] == "fwmark" {
        let v = w.get(1).map(String::as_str).unwrap_or("");
        let mark = number(v, 1, u64::from(u32::MAX)).ok_or_else(|| {
            format!(
                "firewall mark `{}`: 1 to {} (keepalived takes 0 for no mark)",
                printable(v, 40),
                u32::MAX
            )
        })? as u32;
        let family = match w.get(2).map(String::as_str) {
            None => None,
            Some("inet") => Some(Family::Inet),
            Some("inet6") => Some(Family::Inet6),
            Some(f) => return Err(format!("family `{}`: inet or inet6", printable(f, 40))),
        };
        if let Some(x) = w.get(3) {
            return Err(extra(x));
        }
        return Ok(Entry::Fwmark { mark, family });
    }
    let port = port(w.get(1))?;
    if let Some(x) = w.get(2) {
        return Err(extra(x));
    }
    let text = w[0].as_str();
    let cut = text
        .find('-')
        .or_else(|| text.find('/'))
        .unwrap_or(text.len());
    let first = address(&text[..cut])?;
    let v6 = first.is_ipv6();
    let last = match (text.find('/'), text.find('-')) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "`{}`: a range or a subnet, not both",
                printable(text, 60)
            ))
        }
        (Some(k), None) => subnet(first, &text[k + 1..])?,
        (None, Some(k)) => {
            let end = &text[k + 1..];
            if (!v6 && end.contains('.')) || (v6 && end.contains(':')) {
                let last = address(end)?;
                if last.is_ipv6() != v6 || last < first {
                    return Err(format!(
                        "`{}`: the range must end at an address of the same family, not below \
                         its start",
                        printable(text, 60)
                    ));
                }
                last
            } else {
                short_range(first, end)?
            }
        }
        (None, None) => first,
    };
    let count = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u64::from(u32::from(b) - u32::from(a)) + 1,
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            if a.segments()[..7] != b.segments()[..7] {
                return Err(format!(
                    "`{}`: keepalived steps only the last 16 bits of an IPv6 range, so it \
                     does not set up the range as written",
                    printable(text, 60)
                ));
            }
            u64::from(b.segments()[7] - a.segments()[7]) + 1
        }
        _ => 1,
    };
    if count > u64::from(MAX_RANGE) {
        return Err(format!(
            "`{}` is {count} services; lvscheck reads ranges of at most {MAX_RANGE}",
            printable(text, 60)
        ));
    }
    Ok(Entry::Addrs { first, last, port })
}

/// `A/LEN`: the last address of the subnet, whose first is `first` (host bits clear).
fn subnet(first: IpAddr, len: &str) -> Result<IpAddr, String> {
    let bits = if first.is_ipv6() { 128 } else { 32 };
    let len = number(len, 1, bits)
        .ok_or_else(|| format!("prefix length `{}`: 1 to {bits}", printable(len, 40)))?
        as u32;
    let host = |total: u32| {
        if len >= total {
            0u128
        } else {
            (1u128 << (total - len)) - 1
        }
    };
    let clear = "the address has bits set past its prefix length";
    match first {
        IpAddr::V4(a) => {
            let host = host(32) as u32;
            if u32::from(a) & host != 0 {
                return Err(clear.into());
            }
            Ok(IpAddr::V4(Ipv4Addr::from(u32::from(a) | host)))
        }
        IpAddr::V6(a) => {
            let host = host(128);
            if u128::from(a) & host != 0 {
                return Err(clear.into());
            }
            Ok(IpAddr::V6(Ipv6Addr::from(u128::from(a) | host)))
        }
    }
}

/// `inet_stor`: `A-N`, N the last byte (decimal) of an IPv4 range, the last 16 bits (hex) of
/// an IPv6 one, above the start's.
fn short_range(first: IpAddr, end: &str) -> Result<IpAddr, String> {
    let bad = || format!("range end `{}`", printable(end, 40));
    let (start, last) = match first {
        IpAddr::V4(a) => {
            let n = number(end, 0, 255).ok_or_else(bad)?;
            let last = (u32::from(a) & !0xff) | n as u32;
            (u64::from(a.octets()[3]), IpAddr::V4(Ipv4Addr::from(last)))
        }
        IpAddr::V6(a) => {
            if end.is_empty() || end.len() > 4 || !end.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let n = u16::from_str_radix(end, 16).map_err(|_| bad())?;
            let mut s = a.segments();
            let start = s[7];
            s[7] = n;
            (u64::from(start), IpAddr::V6(Ipv6Addr::from(s)))
        }
    };
    let n = match last {
        IpAddr::V4(a) => u64::from(a.octets()[3]),
        IpAddr::V6(a) => u64::from(a.segments()[7]),
    };
    if start >= n {
        return Err(format!(
            "range end `{}` is not above the start",
            printable(end, 40)
        ));
    }
    Ok(last)
}
