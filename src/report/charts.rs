//! Fairness charts, PNG and SVG, sized for a slide (1280x720). Each has a title (the service,
//! what the chart shows) and a subtitle that answers the question: the verdict with its
//! p-value, Jain's index, the chi-square test's p and the weights.
//! - `shares`: connections per server against what the weights promise;
//! - `timeline`: in time bins, the fraction of the checked assignments that the scheduler's
//!   replay did not reproduce, and the connections each server got;
//! - `cumulative`: each server's cumulative share of connections over time, with its
//!   promised share as a dashed line;
//! - `response`: the response-time distribution per server (empirical CDF).
//!
//! However many connections there are, a chart holds a bounded number of marks (bins, or
//! points a pixel apart), so the SVG stays small and no label sits on another. Text is laid
//! out with a font compiled into the binary (DejaVu Sans, assets/fonts), so the charts render
//! the same on a machine without any system font. [`draw_chart`] draws one chart into any
//! plotters drawing area, [`svg`] into a string.

use crate::fairness::{FairnessReport, ServiceReport, Verdict};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;

/// The four chart names, in the order they are written.
pub const CHARTS: [&str; 4] = ["shares", "timeline", "cumulative", "response"];

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];
const MISMATCH: RGBColor = RGBColor(213, 0, 0);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded chart font could not be registered")]
    Font,
    #[error("cannot create chart directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// Registers the embedded font under plotters' "sans-serif" family; safe to call often.
pub fn register_font() -> Result<(), ChartError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font("sans-serif", FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

/// Writes every chart of every service into `dir`; returns the files written.
pub fn render_all(report: &FairnessReport, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    let mut out = Vec::new();
    for svc in &report.services {
        out.extend(render_service(svc, dir)?);
    }
    Ok(out)
}

/// File name stem for a service: `tcp-10.0.0.100-80`, IPv6 colons turned into dashes;
/// `fwmark-1-10.0.0.100` for a firewall-mark service (its connections use several ports).
pub fn stem(svc: &ServiceReport) -> String {
    let proto = format!("{:?}", svc.proto).to_lowercase();
    let ip = svc.vip.ip().to_string().replace(':', "-");
    match svc.mark {
        Some(m) => format!("fwmark-{m}-{ip}"),
        None => format!("{proto}-{ip}-{}", svc.vip.port()),
    }
}

/// Writes the four charts of one service as PNG and SVG.
pub fn render_service(svc: &ServiceReport, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|source| ChartError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for name in CHARTS {
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{}-{name}.{ext}", stem(svc)));
            let fail = |message: String| ChartError::Draw {
                path: path.clone(),
                message,
            };
            if ext == "png" {
                let root = BitMapBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                draw_chart(name, svc, &root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            } else {
                let root = SVGBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                draw_chart(name, svc, &root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            written.push(path);
        }
    }
    Ok(written)
}

/// Chart `name` (one of [`CHARTS`]) of `svc` as an SVG document, [`WIDTH`] x [`HEIGHT`].
pub fn svg(name: &str, svc: &ServiceReport) -> Result<String, ChartError> {
    register_font()?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        let fail = |message: String| ChartError::Draw {
            path: PathBuf::from(format!("{}-{name}.svg", stem(svc))),
            message,
        };
        draw_chart(name, svc, &root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(text)
}

type Area<DB> = DrawingArea<DB, Shift>;

/// Draws chart `name` (one of [`CHARTS`]; anything else is the response chart) of `svc` into
/// `root`, whatever its backend and size; [`register_font`] must have been called.
pub fn draw_chart<DB: DrawingBackend>(
    name: &str,
    svc: &ServiceReport,
    root: &Area<DB>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let r = match name {
        "shares" => shares(svc, root),
        "timeline" => timeline(svc, root),
        "cumulative" => cumulative(svc, root),
        _ => response(svc, root),
    };
    r.map_err(|e| e.to_string())
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The title: the service, its scheduler, what the chart shows.
fn title(svc: &ServiceReport, what: &str) -> String {
    let sched = svc
        .scheduler
        .map_or("no configuration".to_string(), |s| s.to_string());
    format!(
        "{} {} ({sched}): {what}",
        format!("{:?}", svc.proto).to_uppercase(),
        crate::fairness::input::service_label(svc.vip, svc.mark)
    )
}

/// The most servers whose weights the subtitle lists.
const WEIGHTS_LISTED: usize = 12;

/// The subtitle, the answer: the verdict and its p-value, Jain's index, the chi-square test's
/// p, the weights (in the order the servers are drawn).
pub fn subtitle(svc: &ServiceReport) -> String {
    let mut parts = vec![format!("verdict: {}", svc.verdict.short())];
    if let Some(j) = svc.fairness.jain {
        parts.push(format!("Jain's index {j:.3}"));
    }
    if let Some(c) = &svc.fairness.chi_square {
        let p = if c.p_value < 0.001 {
            "p < 0.001".to_string()
        } else {
            format!("p = {:.3}", c.p_value)
        };
        parts.push(format!("chi-square {p}"));
    }
    if svc.servers.iter().any(|s| s.weight.is_some()) {
        if svc.servers.len() <= WEIGHTS_LISTED {
            let w: Vec<String> = svc
                .servers
                .iter()
                .map(|s| s.weight.map_or("-".into(), |w| w.to_string()))
                .collect();
            parts.push(format!("weights {}", w.join(":")));
        } else {
            parts.push(format!(
                "weights of {} servers: see the report",
                svc.servers.len()
            ));
        }
    }
    parts.join("  ·  ")
}

fn verdict_colour(svc: &ServiceReport) -> RGBColor {
    use crate::fairness::FairnessOutcome;
    match svc.verdict.outcome {
        FairnessOutcome::Conforms => RGBColor(0, 120, 60),
        FairnessOutcome::Deviates => MISMATCH,
        FairnessOutcome::Inconclusive => RGBColor(90, 90, 90),
    }
}

/// Height of the title and subtitle band.
const HEADER: u32 = 78;

/// Draws the title and the subtitle across the top of `root`; the area below is the chart's.
fn header<DB: DrawingBackend>(
    svc: &ServiceReport,
    what: &str,
    root: &Area<DB>,
) -> Result<Area<DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let (top, rest) = root.split_vertically(HEADER);
    let centre = top.dim_in_pixel().0 as i32 / 2;
    let at = |size: u32, colour: RGBColor| {
        ("sans-serif", size)
            .into_font()
            .color(&colour)
            .pos(Pos::new(HPos::Center, VPos::Top))
    };
    top.draw(&Text::new(title(svc, what), (centre, 12), at(26, BLACK)))?;
    top.draw(&Text::new(
        subtitle(svc),
        (centre, 48),
        at(18, verdict_colour(svc)),
    ))?;
    Ok(rest)
}

fn label(svc: &ServiceReport, i: usize) -> String {
    svc.servers
        .get(i)
        .map_or(String::new(), |s| s.addr.ip().to_string())
}

fn seconds(svc: &ServiceReport, t: i64) -> f64 {
    let origin = svc.drift.windows.first().map_or(0, |w| w.start_ns);
    (t - origin) as f64 / 1e9
}

fn time_range(svc: &ServiceReport) -> (f64, f64) {
    // The connections drawn decide; without any, the drift windows.
    let end = match svc.timeline.last() {
        Some(a) => seconds(svc, a.time_ns),
        None => seconds(
            svc,
            svc.drift.windows.last().map_or(0, |w| w.start_ns) + svc.drift.window_ns,
        ),
    };
    // A little room on the right so the last mark is not cut by the frame.
    (0.0, if end > 0.0 { end * 1.02 } else { 1.0 })
}

/// The width, in pixels, a text of `chars` characters takes at `size` (DejaVu Sans averages a
/// little over half its size per character; this errs on the wide side).
fn text_width(chars: usize, size: u32) -> u32 {
    (chars as u32 * size * 62).div_ceil(100)
}

/// A count axis's top: a quarter above the largest count (room for the labels and the legend).
fn count_top(largest: u64) -> u64 {
    largest + largest / 4 + 1
}

fn shares<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let area = header(svc, "connections per server vs promised", root)?;
    let n = svc.servers.len().max(1);
    let total: u64 = svc.servers.iter().map(|s| s.connections).sum();
    let promised: Vec<Option<u64>> = svc
        .servers
        .iter()
        .map(|s| s.expected_share.map(|p| (p * total as f64).round() as u64))
        .collect();
    let top = count_top(
        svc.servers
            .iter()
            .map(|s| s.connections)
            .chain(promised.iter().flatten().copied())
            .max()
            .unwrap_or(0),
    );
    // Server names across when they fit their slot, else upright (every k-th when even
    // that is too tight): never one over another.
    let slot = area.dim_in_pixel().0.saturating_sub(110) / n as u32;
    let longest_name = (0..n).map(|i| label(svc, i).len()).max().unwrap_or(0);
    let across = text_width(longest_name, 18) <= slot;
    let (name_size, name_area) = if across {
        (18, 50)
    } else {
        (14, text_width(longest_name, 14) + 24)
    };
    let every = if across {
        1
    } else {
        (18 / slot.max(1) + 1) as i32
    };
    let mut chart = ChartBuilder::on(&area)
        .margin(20)
        .margin_top(4)
        .x_label_area_size(name_area)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0u64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_desc("real server")
        .y_desc("connections")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if across => label(svc, *i as usize),
            _ => String::new(),
        })
        .y_label_formatter(&|y| y.to_string())
        .x_label_style(("sans-serif", name_size))
        .y_label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()?;
    if !across {
        // Upright, top down from just below the axis, centred on the server's slot.
        let upright = ("sans-serif", name_size)
            .into_font()
            .transform(FontTransform::Rotate90)
            .color(&BLACK);
        let base = area.get_base_pixel();
        for i in (0..n as i32).filter(|i| i % every == 0) {
            let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(i), 0));
            area.draw(&Text::new(
                label(svc, i as usize),
                (x - base.0 + name_size / 2, y - base.1 + 8),
                upright.clone(),
            ))?;
        }
    }
    chart
        .draw_series(svc.servers.iter().enumerate().map(|(i, s)| {
            let i = i as i32;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0),
                    (SegmentValue::CenterOf(i), s.connections),
                ],
                colour(i as usize).filled(),
            );
            bar.set_margin(0, 0, 12, 2);
            bar
        }))?
        .label("observed")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour(0).filled()));
    chart
        .draw_series(promised.iter().enumerate().filter_map(|(i, p)| {
            p.map(|p| {
                let i = i as i32;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::CenterOf(i), 0),
                        (SegmentValue::Exact(i + 1), p),
                    ],
                    BLACK.stroke_width(2),
                );
                bar.set_margin(0, 0, 2, 12);
                bar
            })
        }))?
        .label("promised by the weights")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], BLACK.stroke_width(2)));
    let counts: Vec<String> = svc
        .servers
        .iter()
        .map(|s| format!("{} ({:.1}%)", s.connections, s.share * 100.0))
        .collect();
    // Above each server's pair of bars, centred on it: its count and share.
    let widest = counts.iter().map(String::len).max().unwrap_or(0);
    if text_width(widest, 16) <= slot {
        let above = ("sans-serif", 16)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(
            svc.servers
                .iter()
                .zip(&counts)
                .enumerate()
                .map(|(i, (s, text))| {
                    let y = s.connections.max(promised[i].unwrap_or(0));
                    EmptyElement::at((SegmentValue::CenterOf(i as i32), y))
                        + Text::new(text.clone(), (0, -6), above.clone())
                }),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// The timeline in bins: per bin, the assignments the replay checked and those it did not
/// reproduce, and the connections per server.
struct Bins {
    width_s: f64,
    checked: Vec<u64>,
    mismatched: Vec<u64>,
    /// Per server, per bin.
    per_server: Vec<Vec<u64>>,
}

/// Bins of `svc`'s timeline from `t0` to its last connection (`t1` when there is none):
/// about the square root of the connections, 5 to 100 of them.
fn bins(svc: &ServiceReport, (t0, t1): (f64, f64)) -> Bins {
    let n = ((svc.timeline.len() as f64).sqrt().ceil() as usize).clamp(5, 100);
    let end = svc.timeline.last().map_or(t1, |a| seconds(svc, a.time_ns));
    let width_s = ((end - t0) / n as f64).max(1e-6);
    let mut b = Bins {
        width_s,
        checked: vec![0; n],
        mismatched: vec![0; n],
        per_server: vec![vec![0; n]; svc.servers.len()],
    };
    for a in &svc.timeline {
        let k = (((seconds(svc, a.time_ns) - t0) / width_s) as usize).min(n - 1);
        if let Some(row) = b.per_server.get_mut(a.server as usize) {
            row[k] += 1;
        }
        match a.verdict {
            Verdict::Matched => b.checked[k] += 1,
            Verdict::Mismatched => {
                b.checked[k] += 1;
                b.mismatched[k] += 1;
            }
            Verdict::Unchecked => {}
        }
    }
    b
}

fn timeline<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let area = header(svc, "assignments over time", root)?;
    let (t0, t1) = time_range(svc);
    let b = bins(svc, (t0, t1));
    let (upper, lower) = area.split_vertically(area.dim_in_pixel().1 * 45 / 100);

    // The fraction of checked assignments not reproduced, per bin, on an axis that says how
    // much: 8 % of mismatches reach 8 %, not the top.
    let checked: u64 = b.checked.iter().sum();
    let mismatched: u64 = b.mismatched.iter().sum();
    let fractions: Vec<Option<f64>> = b
        .checked
        .iter()
        .zip(&b.mismatched)
        .map(|(&c, &m)| (c > 0).then(|| m as f64 / c as f64))
        .collect();
    let highest = fractions.iter().flatten().copied().fold(0.0, f64::max);
    let y_top = (highest * 1.25).clamp(0.1, 1.0);
    let what = if checked == 0 {
        "no assignment could be checked against the scheduler".to_string()
    } else {
        format!(
            "assignments not as the scheduler predicts: {mismatched} of {checked} checked ({:.1}%), per {:.3} s",
            mismatched as f64 / checked as f64 * 100.0,
            b.width_s
        )
    };
    let mut chart = ChartBuilder::on(&upper)
        .caption(what, ("sans-serif", 18))
        .margin(20)
        .margin_top(4)
        .x_label_area_size(30)
        .y_label_area_size(90)
        .build_cartesian_2d(t0..t1, 0f64..y_top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .y_desc("mismatched")
        .y_labels(5)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(fractions.iter().enumerate().filter_map(|(k, f)| {
        let f = (*f)?;
        let x = t0 + k as f64 * b.width_s;
        Some(Rectangle::new(
            [(x, 0.0), (x + b.width_s, f)],
            MISMATCH.filled(),
        ))
    }))?;

    if svc.timeline.len() <= DOTS {
        assignment_dots(svc, (t0, t1), &lower)
    } else {
        connections_per_bin(svc, &b, (t0, t1), &lower)
    }
}

/// Up to this many connections, the timeline shows each one as a mark; beyond, counts per bin.
const DOTS: usize = 500;

/// One mark per connection, on its server's row at its time; mismatches ringed in red.
fn assignment_dots<DB: DrawingBackend>(
    svc: &ServiceReport,
    (t0, t1): (f64, f64),
    area: &Area<DB>,
) -> DrawResult<DB> {
    let n = svc.servers.len().max(1);
    // A row's name every `every` rows, so that names 16 pixels high do not run into each
    // other (the rows share what the panel leaves after its caption and axis, ~100 px).
    let row_px = area.dim_in_pixel().1.saturating_sub(100) / n as u32;
    let every = (20 / row_px.max(1) + 1) as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "each connection, on the real server it went to (ringed in red: not as the \
             scheduler predicts)",
            ("sans-serif", 18),
        )
        .margin(20)
        .margin_top(4)
        .x_label_area_size(50)
        .y_label_area_size(150)
        .build_cartesian_2d(t0..t1, (0..n as i32 - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .x_desc("time (s)")
        .y_labels(n + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % every == 0 => label(svc, *i as usize),
            _ => String::new(),
        })
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    let at = |a: &crate::fairness::Assignment| {
        (
            seconds(svc, a.time_ns),
            SegmentValue::CenterOf(a.server as i32),
        )
    };
    chart.draw_series(
        svc.timeline
            .iter()
            .map(|a| Circle::new(at(a), 5, colour(a.server as usize).filled())),
    )?;
    // Mismatches ringed in red (the caption says so: no legend box over the marks).
    chart.draw_series(
        svc.timeline
            .iter()
            .filter(|a| a.verdict == Verdict::Mismatched)
            .map(|a| Circle::new(at(a), 9, MISMATCH.stroke_width(2))),
    )?;
    Ok(())
}

/// Connections per server per bin: whole numbers on a whole-number axis.
fn connections_per_bin<DB: DrawingBackend>(
    svc: &ServiceReport,
    b: &Bins,
    (t0, t1): (f64, f64),
    area: &Area<DB>,
) -> DrawResult<DB> {
    let most = b.per_server.iter().flatten().copied().max().unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            if b.per_server.len() <= PALETTE.len() {
                format!("connections per {:.3} s, per real server", b.width_s)
            } else {
                format!(
                    "connections per {:.3} s: the most and the least any of the {} real \
                     servers got",
                    b.width_s,
                    b.per_server.len()
                )
            },
            ("sans-serif", 18),
        )
        .margin(20)
        .margin_top(4)
        .x_label_area_size(50)
        .y_label_area_size(90)
        // Room above the lines for the legend.
        .build_cartesian_2d(t0..t1, 0u64..count_top(most) * 3 / 2)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("time (s)")
        .y_desc("connections")
        .y_labels(5)
        .y_label_formatter(&|y| y.to_string())
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    let at = |k: usize| t0 + (k as f64 + 0.5) * b.width_s;
    if b.per_server.len() <= PALETTE.len() {
        for (i, row) in b.per_server.iter().enumerate() {
            let c = colour(i);
            let points: Vec<(f64, u64)> =
                row.iter().enumerate().map(|(k, &v)| (at(k), v)).collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(label(svc, i))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
    } else {
        // More servers than colours: the least and the most any of them got, per bin.
        let bins = b.per_server.first().map_or(0, Vec::len);
        for (name, pick, c) in [
            (
                "the most any real server got",
                u64::max as fn(u64, u64) -> u64,
                BLACK,
            ),
            ("the least", u64::min, colour(0)),
        ] {
            let points: Vec<(f64, u64)> = (0..bins)
                .map(|k| {
                    let v = b.per_server.iter().map(|row| row[k]).reduce(pick);
                    (at(k), v.unwrap_or(0))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Points of a line at most this many to a chart: about one per pixel column.
const POINTS: usize = 1000;

fn cumulative<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let area = header(svc, "cumulative share of connections", root)?;
    let (t0, t1) = time_range(svc);
    let mut chart = ChartBuilder::on(&area)
        .margin(20)
        .margin_top(4)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(t0..t1, 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("share")
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()?;
    let mut counts = vec![0u64; svc.servers.len()];
    let mut lines: Vec<Vec<(f64, f64)>> = vec![Vec::new(); svc.servers.len()];
    // A point each time the time passes the next step, and at the last connection.
    let step = (t1 - t0) / POINTS as f64;
    let mut next = t0;
    let last = svc.timeline.len().saturating_sub(1);
    for (k, a) in svc.timeline.iter().enumerate() {
        if let Some(c) = counts.get_mut(a.server as usize) {
            *c += 1;
        }
        let t = seconds(svc, a.time_ns);
        if t < next && k != last {
            continue;
        }
        next = t + step;
        let total = (k + 1) as f64;
        for (i, line) in lines.iter_mut().enumerate() {
            line.push((t, counts[i] as f64 / total));
        }
    }
    for (i, line) in lines.into_iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(3)))?
            .label(label(svc, i))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        if let Some(p) = svc.servers[i].expected_share {
            chart.draw_series(DashedLineSeries::new(
                vec![(t0, p), (t1, p)],
                10,
                6,
                c.stroke_width(1),
            ))?;
        }
    }
    if svc.servers.iter().any(|s| s.expected_share.is_some()) {
        // One legend entry explaining the dashed lines, drawn off-chart (no points).
        chart
            .draw_series(LineSeries::new(
                Vec::<(f64, f64)>::new(),
                BLACK.stroke_width(1),
            ))?
            .label("promised share (dashed)")
            .legend(|(x, y)| {
                plotters::element::DashedPathElement::new(
                    vec![(x, y), (x + 20, y)],
                    5,
                    3,
                    BLACK.stroke_width(1),
                )
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// The steps of the empirical CDF of sorted `v`: every sample when there are few, else
/// [`POINTS`] quantiles.
fn cdf_points(v: &[f64]) -> Vec<(f64, f64)> {
    if v.is_empty() {
        return Vec::new();
    }
    let n = v.len();
    let mut pts = vec![(0.0, 0.0)];
    if n <= POINTS {
        for (k, &x) in v.iter().enumerate() {
            pts.push((x, k as f64 / n as f64));
            pts.push((x, (k + 1) as f64 / n as f64));
        }
    } else {
        for q in 0..=POINTS {
            let k = ((q * (n - 1)) / POINTS).min(n - 1);
            pts.push((v[k], (k + 1) as f64 / n as f64));
        }
    }
    pts
}

fn response<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let max = svc
        .servers
        .iter()
        .filter_map(|s| s.response_samples_ms.last().copied())
        .fold(1.0, f64::max)
        * 1.05;
    let any = svc
        .servers
        .iter()
        .any(|s| !s.response_samples_ms.is_empty());
    let what = if any {
        "response time distribution (CDF)"
    } else {
        "response time distribution: no response time captured"
    };
    let area = header(svc, what, root)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(20)
        .margin_top(4)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max, 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("response time (ms)")
        .y_desc("fraction of connections")
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()?;
    for (i, s) in svc.servers.iter().enumerate() {
        let c = colour(i);
        let name = match &s.response_ms {
            Some(p) => format!("{} (p50 {:.1} ms, n={})", label(svc, i), p.p50, p.count),
            None => format!("{} (no sample)", label(svc, i)),
        };
        chart
            .draw_series(LineSeries::new(
                cdf_points(&s.response_samples_ms),
                c.stroke_width(3),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
