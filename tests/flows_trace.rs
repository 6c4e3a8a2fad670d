//! The packets of each connection gathered again from the captures (`flows::trace`), checked
//! against tshark: in every capture, a connection's packets are the frames whose TCP header
//! (or the one an ICMP error quotes) carries the client's address and port.

mod verify_common;

use lvscheck::capture::CaptureSource;
use lvscheck::decode::DecodeOptions;
use lvscheck::flows::trace::{collect, Traces};
use lvscheck::flows::{analyse_source, Analysis, FileSource, FlowOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn captures(fixture: &str) -> Vec<PathBuf> {
    verify_common::fixture_captures(fixture)
}

/// Frames of `file` tshark shows for `filter`.
fn tshark_frames(file: &Path, filter: &str) -> Vec<u64> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark {filter}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// A fixture's captures, its analysis and the packets of all its connections.
fn traced(fixture: &str) -> (Vec<PathBuf>, Analysis, Traces) {
    let files = captures(fixture);
    let sources: Vec<CaptureSource> = files.iter().cloned().map(CaptureSource::File).collect();
    let opts = FlowOptions::default();
    let source = FileSource::new(sources.clone(), DecodeOptions::default(), opts.look_ahead);
    let analysis = analyse_source(&source, &opts);
    let conns: Vec<_> = analysis.connections.iter().collect();
    let traces = collect(
        &sources,
        DecodeOptions::default(),
        &analysis,
        &conns,
        usize::MAX,
    );
    (files, analysis, traces)
}

fn each_connection_has_the_frames_tshark_shows(fixture: &str) {
    if !verify_common::tshark_available() {
        return;
    }
    let (files, analysis, traces) = traced(fixture);
    assert!(!analysis.connections.is_empty(), "{fixture}: connections");
    let conns: Vec<_> = analysis.connections.iter().collect();
    assert!(traces.unread.is_empty(), "{:?}", traces.unread);
    for (c, packets) in conns.iter().zip(&traces.packets) {
        let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for p in packets {
            got.entry(p.frame.capture).or_default().push(p.frame.frame);
        }
        for (i, file) in files.iter().enumerate() {
            let filter = format!(
                "ip.addr == {} && tcp.port == {}",
                c.client.ip(),
                c.client.port()
            );
            let mut mine = got.remove(&(i as u32)).unwrap_or_default();
            mine.sort_unstable();
            assert_eq!(
                mine,
                tshark_frames(file, &filter),
                "{fixture}: connection {} in {}",
                c.id,
                file.display()
            );
        }
        assert!(
            !packets.is_empty(),
            "{fixture}: connection {} has packets",
            c.id
        );
        // In order of the reference clock, every packet once.
        assert!(packets.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
    }
}

#[test]
fn tutorial_connections_are_traced_in_every_capture() {
    each_connection_has_the_frames_tshark_shows("tutorial");
}

#[test]
fn rp_filter_connections_are_traced_in_every_capture() {
    each_connection_has_the_frames_tshark_shows("rp-filter");
}

#[test]
fn gue_connections_are_traced_in_every_capture() {
    each_connection_has_the_frames_tshark_shows("gue-healthy");
}

/// Retransmissions are marked per vantage point and form: where a capture holds each packet
/// once (client, real server), the frames marked are those tshark calls retransmissions; at
/// the director, the wrapped copy of a request is marked exactly when the copy that arrived is.
fn retransmissions_are_tsharks(fixture: &str) {
    if !verify_common::tshark_available() {
        return;
    }
    let (files, analysis, traces) = traced(fixture);
    let director = |capture: u32| {
        analysis
            .topology
            .vantages
            .iter()
            .any(|v| v.id.capture == capture && v.role == lvscheck::topology::Role::Director)
    };
    let mut marked_somewhere = 0;
    for (i, file) in files.iter().enumerate() {
        let mut mine: Vec<u64> = traces
            .packets
            .iter()
            .flatten()
            .filter(|p| p.frame.capture == i as u32 && p.retransmission)
            .map(|p| p.frame.frame)
            .collect();
        mine.sort_unstable();
        marked_somewhere += mine.len();
        if director(i as u32) {
            for list in &traces.packets {
                let at_director = |p: &&lvscheck::flows::trace::TracedPacket| {
                    p.frame.capture == i as u32 && p.tcp.is_some()
                };
                let plain: Vec<_> = list
                    .iter()
                    .filter(at_director)
                    .filter(|p| p.form == lvscheck::flows::Form::Request)
                    .map(|p| (p.identity, p.retransmission))
                    .collect();
                let wrapped: Vec<_> = list
                    .iter()
                    .filter(at_director)
                    .filter(|p| p.form == lvscheck::flows::Form::RequestWrapped)
                    .map(|p| (p.identity, p.retransmission))
                    .collect();
                assert_eq!(plain, wrapped, "{fixture}: {}", file.display());
            }
        } else {
            assert_eq!(
                mine,
                tshark_frames(file, "tcp.analysis.retransmission"),
                "{fixture}: {}",
                file.display()
            );
        }
    }
    assert!(marked_somewhere > 0, "{fixture}: some retransmission");
}

#[test]
fn tutorial_retransmissions_are_tsharks() {
    retransmissions_are_tsharks("tutorial");
}

#[test]
fn rp_filter_retransmissions_are_tsharks() {
    retransmissions_are_tsharks("rp-filter");
}

/// Every evidence frame of rp-filter's reply.present finding belongs to a connection whose
/// client port tshark shows in that frame.
#[test]
fn evidence_frames_name_their_connection() {
    if !verify_common::tshark_available() {
        return;
    }
    let files = captures("rp-filter");
    let sources: Vec<CaptureSource> = files.iter().cloned().map(CaptureSource::File).collect();
    let opts = FlowOptions::default();
    let source = FileSource::new(sources, DecodeOptions::default(), opts.look_ahead);
    let analysis = analyse_source(&source, &opts);
    let conns: Vec<_> = analysis.connections.iter().collect();
    let by_frame = lvscheck::flows::trace::connections_by_frame(&conns);
    let (_, doc) = verify_common::verify(&files);
    let finding = &verify_common::check(&doc, "reply.present")["findings"][0];
    let evidence = finding["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty());
    for e in evidence {
        let file = Path::new(e["file"].as_str().unwrap());
        let capture = files.iter().position(|f| f.ends_with(file)).unwrap() as u32;
        let frame = e["frame"].as_u64().unwrap();
        let c = conns[by_frame[&(capture, frame)]];
        let filter = format!(
            "frame.number == {frame} && ip.addr == {} && tcp.port == {}",
            c.client.ip(),
            c.client.port()
        );
        assert_eq!(tshark_frames(&files[capture as usize], &filter), [frame]);
    }
}
