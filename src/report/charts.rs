//! Fairness charts, PNG and SVG, sized for a slide (1280x720):
//! - `shares`: connections per server against what the weights promise;
//! - `timeline`: time against server, one mark per connection, mismatches highlighted;
//! - `cumulative`: each server's cumulative share of connections over time, with its
//!   promised share as a dashed line;
//! - `response`: the response-time distribution per server (empirical CDF).
//!
//! Text is laid out with a font compiled into the binary (DejaVu Sans, assets/fonts), so the
//! charts render the same on a machine without any system font.

use crate::fairness::{FairnessReport, ServiceReport, Verdict};
use plotters::coord::Shift;
use plotters::prelude::*;
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
const UNCHECKED: RGBColor = RGBColor(150, 150, 150);

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
                draw(name, svc, &root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            } else {
                let root = SVGBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                draw(name, svc, &root).map_err(fail)?;
                root.present().map_err(|e| fail(e.to_string()))?;
            }
            written.push(path);
        }
    }
    Ok(written)
}

/// Chart `name` (one of [`CHARTS`]) of `svc` as an SVG document in a string, drawn as
/// [`render_service`] draws it: for the HTML report, which puts it inline.
pub fn svg(name: &str, svc: &ServiceReport) -> Result<String, ChartError> {
    register_font()?;
    let fail = |message: String| ChartError::Draw {
        path: PathBuf::from(format!("{}-{name}.svg", stem(svc))),
        message,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(name, svc, &root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(
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
    let end = svc
        .timeline
        .last()
        .map_or(1.0, |a| seconds(svc, a.time_ns))
        .max(seconds(
            svc,
            svc.drift.windows.last().map_or(0, |w| w.start_ns) + svc.drift.window_ns,
        ));
    // A little room on the right so the last mark is not cut by the frame.
    (0.0, end.max(1.0) * 1.02)
}

fn shares<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let n = svc.servers.len().max(1);
    let total: u64 = svc.servers.iter().map(|s| s.connections).sum();
    let promised: Vec<Option<f64>> = svc
        .servers
        .iter()
        .map(|s| s.expected_share.map(|p| p * total as f64))
        .collect();
    let top = svc
        .servers
        .iter()
        .map(|s| s.connections as f64)
        .chain(promised.iter().flatten().copied())
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(
            title(svc, "connections per server vs promised"),
            ("sans-serif", 28),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("real server")
        .y_desc("connections")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => label(svc, *i as usize),
            _ => String::new(),
        })
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()?;
    chart
        .draw_series(svc.servers.iter().enumerate().map(|(i, s)| {
            let i = i as i32;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::CenterOf(i), s.connections as f64),
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
                        (SegmentValue::CenterOf(i), 0.0),
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
    chart.draw_series(svc.servers.iter().enumerate().map(|(i, s)| {
        Text::new(
            format!("{} ({:.1}%)", s.connections, s.share * 100.0),
            (
                SegmentValue::Exact(i as i32),
                s.connections as f64 + top * 0.02,
            ),
            ("sans-serif", 16),
        )
    }))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn timeline<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let n = svc.servers.len().max(1);
    let (t0, t1) = time_range(svc);
    let mut chart = ChartBuilder::on(root)
        .caption(title(svc, "assignments over time"), ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(150)
        .build_cartesian_2d(t0..t1, (0..n as i32 - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("time (s)")
        .y_desc("real server")
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => label(svc, *i as usize),
            _ => String::new(),
        })
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()?;
    let point = |a: &crate::fairness::Assignment| {
        (
            seconds(svc, a.time_ns),
            SegmentValue::CenterOf(a.server as i32),
        )
    };
    // Bigger marks when there are few, so a short capture still reads from the back row.
    let (small, big) = if svc.timeline.len() <= 200 {
        (6, 10)
    } else {
        (3, 6)
    };
    for (verdict, name, style, size) in [
        (Verdict::Unchecked, "not checked", UNCHECKED.filled(), small),
        (
            Verdict::Matched,
            "as the scheduler predicts",
            colour(0).filled(),
            small,
        ),
        (Verdict::Mismatched, "mismatch", MISMATCH.filled(), big),
    ] {
        let pts: Vec<_> = svc
            .timeline
            .iter()
            .filter(|a| a.verdict == verdict)
            .map(point)
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, size, style)))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 8, y), size, style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn cumulative<DB: DrawingBackend>(svc: &ServiceReport, root: &Area<DB>) -> DrawResult<DB> {
    let (t0, t1) = time_range(svc);
    let mut chart = ChartBuilder::on(root)
        .caption(
            title(svc, "cumulative share of connections"),
            ("sans-serif", 28),
        )
        .margin(20)
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
    for (k, a) in svc.timeline.iter().enumerate() {
        counts[a.server as usize] += 1;
        let total = (k + 1) as f64;
        let t = seconds(svc, a.time_ns);
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
    let mut chart = ChartBuilder::on(root)
        .caption(title(svc, what), ("sans-serif", 28))
        .margin(20)
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
        let v = &s.response_samples_ms;
        let c = colour(i);
        // A step line through every sample: (x_k, k/n) -> (x_k, (k+1)/n).
        let mut pts = vec![(0.0, 0.0)];
        for (k, &x) in v.iter().enumerate() {
            pts.push((x, k as f64 / v.len() as f64));
            pts.push((x, (k + 1) as f64 / v.len() as f64));
        }
        let name = match &s.response_ms {
            Some(p) => format!("{} (p50 {:.1} ms, n={})", label(svc, i), p.p50, p.count),
            None => format!("{} (no sample)", label(svc, i)),
        };
        chart
            .draw_series(LineSeries::new(
                if v.is_empty() { Vec::new() } else { pts },
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
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}
