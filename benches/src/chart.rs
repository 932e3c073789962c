//! `rmi-bench --chart FROM.json OUT.svg`: an SVG bar chart of a results
//! file that `--save` wrote. One group of bars per workload, one bar per
//! system that ran it (rmi, rmi on the multi-thread runtime, raw TCP,
//! tarpc, tonic, Pyro5); each bar is that system's calls/s (MB/s for the
//! payload workloads) divided by rmi's in the same workload, so rmi = 1 and
//! a longer bar is faster. The axis is logarithmic: the systems differ by
//! orders of magnitude (Pyro5's oneway calls, raw TCP's 8-byte stream).
//!
//! The bars run across, the workloads down: a dozen workloads of up to six
//! bars each leaves the names and the figures beside every bar room to be
//! read.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::flag;
use crate::measure::Outcome;

/// One system of the chart, in the order of its bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum System {
    /// `rmi.*`: rmi as `--rmi-threads` said (a current-thread runtime by default).
    Rmi,
    /// `rmi.mt.*`: rmi on tokio's default multi-thread runtime.
    RmiMt,
    /// `tcp.*`: raw tokio TCP, the limit.
    Tcp,
    /// `tcp.mt.*`: raw tokio TCP on the multi-thread runtime.
    TcpMt,
    /// `tarpc.*`: a plain tarpc service.
    Tarpc,
    /// `tonic.*`: gRPC.
    Tonic,
    /// `pyro.*`: Pyro5 (msgpack).
    Pyro,
}

const SYSTEMS: [System; 7] =
    [System::Rmi, System::RmiMt, System::Tcp, System::TcpMt, System::Tarpc, System::Tonic, System::Pyro];

impl System {
    /// The first part of its run names (`--save`'s keys).
    fn prefix(self) -> &'static str {
        match self {
            System::Rmi => "rmi",
            System::RmiMt => "rmi.mt",
            System::Tcp => "tcp",
            System::TcpMt => "tcp.mt",
            System::Tarpc => "tarpc",
            System::Tonic => "tonic",
            System::Pyro => "pyro",
        }
    }

    /// Its name in the legend; `rmi_threads` is what the saved run's
    /// `--rmi-threads` was.
    fn label(self, rmi_threads: usize) -> String {
        match self {
            System::Rmi => match rmi_threads {
                1 => "rmi (current-thread runtime)".to_owned(),
                0 => "rmi (multi-thread runtime, --rmi-threads 0)".to_owned(),
                n => format!("rmi ({n} worker threads)"),
            },
            System::RmiMt => "rmi, multi-thread runtime (rmi.mt)".to_owned(),
            System::Tcp => "raw TCP (the limit)".to_owned(),
            System::TcpMt => "raw TCP, multi-thread runtime (tcp.mt)".to_owned(),
            System::Tarpc => "tarpc".to_owned(),
            System::Tonic => "tonic (gRPC)".to_owned(),
            System::Pyro => "Pyro5 (msgpack)".to_owned(),
        }
    }

    fn colour(self) -> RGBColor {
        match self {
            System::Rmi => RGBColor(0xc0, 0x39, 0x2b),
            System::RmiMt => RGBColor(0xf1, 0x94, 0x8a),
            System::Tcp => RGBColor(0x7f, 0x8c, 0x8d),
            System::TcpMt => RGBColor(0xbd, 0xc3, 0xc7),
            System::Tarpc => RGBColor(0x2e, 0x86, 0xc1),
            System::Tonic => RGBColor(0x27, 0xae, 0x60),
            System::Pyro => RGBColor(0xf3, 0x9c, 0x12),
        }
    }
}

/// What a workload's bars compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// Operations per second.
    Rate,
    /// Megabytes (10^6) per second.
    Throughput,
}

/// A workload the suite runs: its run names' last part, how it reads.
struct Workload<'a> {
    key: &'a str,
    title: &'a str,
    measure: Measure,
    /// What one of its operations is (for the figures beside the bars).
    unit: &'a str,
    /// Pyro5's run for it, if Pyro5 has one (its names differ).
    pyro: Option<&'a str>,
}

/// The workloads with baselines, in the suite's order. rmi's runs without
/// a baseline (callbacks, references, HMAC, the blocking pool) are the
/// table's business, not the chart's.
const WORKLOADS: &[Workload<'static>] = &[
    w("seq", "1 call at a time", Measure::Rate, "calls/s", Some("seq.msgpack")),
    w(
        "seq.pinned",
        "1 call at a time, pinned to 1 CPU",
        Measure::Rate,
        "calls/s",
        Some("seq.msgpack.pinned"),
    ),
    w("pipe64", "64 calls in flight", Measure::Rate, "calls/s", None),
    w("clients8", "8 clients", Measure::Rate, "calls/s", Some("clients8")),
    w("payload", "10 MiB argument", Measure::Throughput, "MB/s", Some("payload")),
    w("stream.items", "stream of 8-byte items", Measure::Rate, "items/s", None),
    w("stream.chunks", "stream of 64 KiB chunks", Measure::Throughput, "MB/s", None),
    w("oneway", "oneway calls", Measure::Rate, "calls/s", Some("oneway")),
    w("batch", "batches of 10,000 calls", Measure::Rate, "calls/s", Some("batch")),
    w("lookup.seq", "name lookups, 1 at a time", Measure::Rate, "lookups/s", Some("lookup.seq")),
    // Pyro5 has no pipelining: its best of 1 and 8 client threads.
    w("lookup.pipe64", "name lookups, 64 in flight", Measure::Rate, "lookups/s", Some("lookup")),
    w("register.seq", "durable registrations, 1 at a time", Measure::Rate, "regs/s", Some("register.seq")),
    w("register.pipe64", "durable registrations, 64 at once", Measure::Rate, "regs/s", Some("register")),
];

const fn w(
    key: &'static str,
    title: &'static str,
    measure: Measure,
    unit: &'static str,
    pyro: Option<&'static str>,
) -> Workload<'static> {
    Workload { key, title, measure, unit, pyro }
}

/// One bar: a system's figure and its ratio to rmi's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub(crate) system: System,
    /// The figure itself, in the group's unit.
    pub(crate) value: f64,
    /// `value` / rmi's value.
    pub(crate) ratio: f64,
}

/// One workload's bars: rmi's first, then every other system that ran it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// The run names' last part (`seq`, `pipe64`, …).
    pub(crate) key: String,
    pub(crate) title: String,
    pub(crate) measure: Measure,
    pub(crate) unit: String,
    pub(crate) bars: Vec<Bar>,
}

/// Reads a file that `rmi-bench --save` wrote.
pub(crate) fn parse(text: &str) -> anyhow::Result<BTreeMap<String, Outcome>> {
    serde_json::from_str(text).context(
        "not a results file of `rmi-bench --save`: a JSON object of run name → \
         {ops, secs, p50_us, p99_us, bytes} was expected",
    )
}

fn load(path: &str) -> anyhow::Result<BTreeMap<String, Outcome>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse(&text).with_context(|| format!("reading {path}"))
}

/// The figure a bar shows, if the outcome has a usable one (a run that
/// measured nothing has no bar: a log axis has no room for 0).
fn figure(o: &Outcome, measure: Measure) -> Option<f64> {
    let v = match measure {
        Measure::Rate => o.rate(),
        Measure::Throughput => o.mb_per_sec()?,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// The group of one workload, if rmi and at least one other system have a
/// figure for it.
fn group(results: &BTreeMap<String, Outcome>, wl: &Workload<'_>) -> Option<Group> {
    let rmi = figure(results.get(&format!("rmi.{}", wl.key))?, wl.measure)?;
    let bars: Vec<Bar> = SYSTEMS
        .iter()
        .filter_map(|&system| {
            let name = match system {
                System::Pyro => format!("pyro.{}", wl.pyro?),
                s => format!("{}.{}", s.prefix(), wl.key),
            };
            let value = figure(results.get(&name)?, wl.measure)?;
            Some(Bar { system, value, ratio: value / rmi })
        })
        .collect();
    (bars.len() > 1).then(|| Group {
        key: wl.key.to_owned(),
        title: wl.title.to_owned(),
        measure: wl.measure,
        unit: wl.unit.to_owned(),
        bars,
    })
}

/// Every workload of `results` that has rmi and another system, the known
/// ones in the suite's order, then any other that rmi and raw TCP, tarpc
/// or tonic ran (a workload added since), under its run name.
pub(crate) fn groups(results: &BTreeMap<String, Outcome>) -> Vec<Group> {
    let mut all: Vec<Group> = WORKLOADS.iter().filter_map(|wl| group(results, wl)).collect();
    let known: BTreeSet<&str> = WORKLOADS.iter().map(|wl| wl.key).collect();
    let baselines = [System::Tcp, System::Tarpc, System::Tonic];
    let others: BTreeSet<&str> = results
        .keys()
        .filter_map(|name| baselines.iter().find_map(|s| name.strip_prefix(s.prefix())?.strip_prefix('.')))
        // `tcp.mt.*` is a system of its own, not a workload `mt.*` of `tcp`.
        .filter(|key| !known.contains(*key) && !key.starts_with("mt."))
        .collect();
    for key in others {
        // Both sides moved bytes: MB/s; else operations per second.
        let bytes = |prefix: &str| results.get(&format!("{prefix}.{key}")).is_some_and(|o| o.bytes.is_some());
        let measure = if bytes("rmi") && baselines.iter().any(|s| bytes(s.prefix())) {
            Measure::Throughput
        } else {
            Measure::Rate
        };
        let unit = if measure == Measure::Throughput { "MB/s" } else { "ops/s" };
        let wl = Workload { key, title: key, measure, unit, pyro: None };
        all.extend(group(results, &wl));
    }
    all
}

/// A ratio as the chart prints it: two significant digits at least.
pub(crate) fn ratio_text(r: f64) -> String {
    if r >= 9.95 {
        format!("{r:.0}")
    } else if r >= 0.0995 {
        format!("{r:.2}")
    } else {
        // 0.0xy, 0.00xy, …: two significant digits.
        let digits = (-r.log10().floor()) as usize + 1;
        format!("{r:.digits$}")
    }
}

/// A figure, compactly: 7.20 k, 191 k, 57.0 M.
pub(crate) fn figure_text(v: f64) -> String {
    let (scaled, suffix) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    let text = if scaled >= 99.95 {
        format!("{scaled:.0}")
    } else if scaled >= 9.995 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    format!("{text}{suffix}")
}

/// The axis: whole decades from below the smallest ratio to well above the
/// largest (room for the figures to the right of the longest bar).
pub(crate) fn axis_range(groups: &[Group]) -> (f64, f64) {
    let ratios = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.ratio));
    let (min, max) = ratios.fold((1.0f64, 1.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let lo = (min / 1.5).log10().floor() as i32;
    let hi = (max * 6.0).log10().ceil() as i32;
    (10f64.powi(lo), 10f64.powi(hi))
}

/// `rmi-bench --chart FROM.json OUT.svg [--rmi-threads N]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    const USAGE: &str = "rmi-bench --chart FROM.json OUT.svg [--rmi-threads N]";
    let [from, out, rest @ ..] = args else { anyhow::bail!("usage: {USAGE}") };
    let rmi_threads: usize = match rest {
        [] => 1,
        [f, _] if f == "--rmi-threads" => {
            flag(rest, "--rmi-threads").unwrap_or("1").parse().context("--rmi-threads")?
        }
        _ => anyhow::bail!("usage: {USAGE}"),
    };
    let results = load(from)?;
    let groups = groups(&results);
    anyhow::ensure!(
        !groups.is_empty(),
        "{from}: no workload has both an rmi run and another system's (runs: {})",
        results.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    let svg = draw(&groups, rmi_threads, from)?;
    std::fs::write(out, svg).with_context(|| format!("writing {out}"))?;
    let bars: usize = groups.iter().map(|g| g.bars.len()).sum();
    eprintln!("{out}: {} workloads, {bars} bars", groups.len());
    Ok(())
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 1200;
/// Left of the bars: the workloads' names.
const LABELS_WIDTH: u32 = 250;
const BAR: f64 = 16.0;
/// Between two groups.
const GAP: f64 = 14.0;
/// The least height of a group: its name's two lines.
const GROUP_MIN: f64 = 34.0;
const TITLE_HEIGHT: u32 = 44;
const LEGEND_ROW: u32 = 24;
const NOTE_ROW: u32 = 18;
const AXIS_HEIGHT: u32 = 56;

/// A text style; `size` in plotters' units (the SVG's font-size is size / 1.24).
fn text(size: f64, colour: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle { font: (FONT, size).into_font(), color: colour.to_backend_color(), pos: Pos::new(h, v) }
}

/// Draws the chart; returns the SVG.
pub(crate) fn draw(groups: &[Group], rmi_threads: usize, source: &str) -> anyhow::Result<String> {
    let shown: BTreeSet<System> = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.system)).collect();
    // The legend's entries, wrapped into rows (the SVG backend has no text
    // metrics: about 7 pixels a character).
    let mut legend_rows: Vec<Vec<(System, String, u32)>> = vec![Vec::new()];
    let mut x = 0;
    for &system in &shown {
        let label = system.label(rmi_threads);
        let width = 30 + 7 * label.chars().count() as u32;
        if x + width > WIDTH - 40 && x > 0 {
            legend_rows.push(Vec::new());
            x = 0;
        }
        if let Some(row) = legend_rows.last_mut() {
            row.push((system, label, x));
        }
        x += width;
    }
    let mut notes = vec![
        "Each bar: that system's figure ÷ rmi's in the same workload (calls/s, or MB/s for the 10 MiB \
         argument and the 64 KiB chunks): rmi = 1, longer is faster; log scale. Beside each bar: the \
         ratio and the figure."
            .to_owned(),
        format!("From {source}; each system's server and client in processes of their own, on loopback."),
    ];
    if shown.contains(&System::Pyro) {
        notes.push(
            "Pyro5 has no pipelining: beside rmi's 64 lookups in flight and 64 registrations at once, its \
             best of 1 and 8 client threads."
                .to_owned(),
        );
    }

    let heights: Vec<f64> = groups.iter().map(|g| (g.bars.len() as f64 * BAR).max(GROUP_MIN)).collect();
    let total: f64 = heights.iter().sum::<f64>() + GAP * groups.len() as f64;
    let header = TITLE_HEIGHT + LEGEND_ROW * legend_rows.len() as u32 + 8;
    let footer = NOTE_ROW * notes.len() as u32 + 12;
    let body = total.ceil() as u32 + AXIS_HEIGHT + 20;
    let height = header + body + footer;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            "rmi-bench: each system's speed relative to rmi (rmi = 1)",
            (20, 14),
            text(24.0, BLACK, HPos::Left, VPos::Top),
        ))?;
        for (i, row) in legend_rows.iter().enumerate() {
            let y = (TITLE_HEIGHT + LEGEND_ROW * i as u32 + LEGEND_ROW / 2) as i32;
            for (system, label, x) in row {
                let x = 20 + *x as i32;
                root.draw(&Rectangle::new([(x, y - 7), (x + 18, y + 7)], system.colour().filled()))?;
                root.draw(&Text::new(
                    label.as_str(),
                    (x + 24, y),
                    text(16.0, BLACK, HPos::Left, VPos::Center),
                ))?;
            }
        }
        let (_, rest) = root.split_vertically(header);
        let (body_area, footer_area) = rest.split_vertically(body);
        for (i, note) in notes.iter().enumerate() {
            let y = 4 + (NOTE_ROW * i as u32) as i32;
            footer_area.draw(&Text::new(
                note.as_str(),
                (20, y),
                text(14.0, RGBColor(0x55, 0x55, 0x55), HPos::Left, VPos::Top),
            ))?;
        }

        let (lo, hi) = axis_range(groups);
        let (first, last) = (lo.log10().round() as i32, hi.log10().round() as i32);
        let decades: Vec<f64> = (first..=last).map(|e| 10f64.powi(e)).collect();
        let lights: Vec<f64> = decades.iter().flat_map(|d| [2.0 * d, 5.0 * d]).filter(|v| *v < hi).collect();
        let mut chart = ChartBuilder::on(&body_area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(10)
            .margin_bottom(10)
            .x_label_area_size(AXIS_HEIGHT)
            .y_label_area_size(LABELS_WIDTH)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(decades).with_light_points(lights),
                0.0..total,
            )?;
        let tick = |v: &f64| if (*v - 1.0).abs() < 1e-9 { "1 = rmi".to_owned() } else { tick_text(*v) };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&tick)
            .x_label_style(text(15.0, BLACK, HPos::Center, VPos::Top))
            .x_desc("speed relative to rmi (log scale)")
            .axis_desc_style(text(16.0, BLACK, HPos::Center, VPos::Top))
            .bold_line_style(RGBColor(0xcc, 0xcc, 0xcc))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()?;

        // Top down: y counts from the bottom.
        let mut top = total;
        // Each bar's ratio and figure, drawn last, over rmi's line.
        let mut labels: Vec<(f64, f64, String)> = Vec::new();
        for (i, (g, h)) in groups.iter().zip(&heights).enumerate() {
            let (upper, lower) = (top, top - h - GAP);
            if i % 2 == 1 {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(lo, upper), (hi, lower)],
                    RGBColor(0xf4, 0xf6, 0xf7).filled(),
                )))?;
            }
            let first = upper - GAP / 2.0 - (h - g.bars.len() as f64 * BAR) / 2.0;
            for (j, bar) in g.bars.iter().enumerate() {
                let y0 = first - j as f64 * BAR;
                let y1 = y0 - BAR + 2.0;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(lo, y0), (bar.ratio, y1)],
                    bar.system.colour().filled(),
                )))?;
                let label = format!("{}× ({} {})", ratio_text(bar.ratio), figure_text(bar.value), g.unit);
                labels.push((bar.ratio, (y0 + y1) / 2.0, label));
            }
            // The name, left of the axis, on root's coordinates.
            let (_, y) = chart.backend_coord(&(lo, (upper + lower) / 2.0));
            let (x, _) = chart.backend_coord(&(lo, 0.0));
            root.draw(&Text::new(
                g.title.as_str(),
                (x - 10, y - 8),
                text(16.0, BLACK, HPos::Right, VPos::Center),
            ))?;
            let what = match g.measure {
                Measure::Rate => g.unit.as_str(),
                Measure::Throughput => "MB/s",
            };
            root.draw(&Text::new(
                format!("({what})"),
                (x - 10, y + 9),
                text(14.0, RGBColor(0x77, 0x77, 0x77), HPos::Right, VPos::Center),
            ))?;
            top = lower;
        }
        // rmi's line, under the figures.
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, total)],
            RGBColor(0x44, 0x44, 0x44).stroke_width(1),
        )))?;
        for (ratio, y, label) in labels {
            chart.draw_series(std::iter::once(
                EmptyElement::at((ratio, y))
                    + Text::new(
                        label,
                        (5, 0),
                        text(14.0, RGBColor(0x33, 0x33, 0x33), HPos::Left, VPos::Center),
                    ),
            ))?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// A tick of the axis: 0.001, 0.01, 0.1, 2, 10, 100.
fn tick_text(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let digits = (-v.log10().floor()) as usize;
        format!("{v:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ops: u64, secs: f64, bytes: Option<u64>) -> String {
        let bytes = bytes.map_or("null".to_owned(), |b| b.to_string());
        format!(r#"{{"ops": {ops}, "secs": {secs}, "p50_us": null, "p99_us": null, "bytes": {bytes}}}"#)
    }

    fn results(rows: &[(&str, String)]) -> BTreeMap<String, Outcome> {
        let body: Vec<String> = rows.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        match parse(&format!("{{{}}}", body.join(", "))) {
            Ok(r) => r,
            Err(e) => panic!("the test's JSON: {e:#}"),
        }
    }

    #[test]
    fn rmi_and_tcp_for_seq_give_one_group_of_two_bars() {
        let r = results(&[("rmi.seq", outcome(10_000, 2.0, None)), ("tcp.seq", outcome(12_000, 2.0, None))]);
        let g = groups(&r);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].key, "seq");
        assert_eq!(g[0].measure, Measure::Rate);
        let systems: Vec<System> = g[0].bars.iter().map(|b| b.system).collect();
        assert_eq!(systems, [System::Rmi, System::Tcp]);
        assert!((g[0].bars[0].ratio - 1.0).abs() < 1e-12);
        assert!((g[0].bars[0].value - 5_000.0).abs() < 1e-9);
        assert!((g[0].bars[1].ratio - 1.2).abs() < 1e-12);
    }

    #[test]
    fn a_missing_system_is_absent_and_both_rmi_runtimes_show() {
        let r = results(&[
            ("rmi.pipe64", outcome(200_000, 2.0, None)),
            ("rmi.mt.pipe64", outcome(100_000, 2.0, None)),
            ("tarpc.pipe64", outcome(50_000, 2.0, None)),
        ]);
        let g = groups(&r);
        assert_eq!(g.len(), 1);
        let bars: Vec<(System, f64)> = g[0].bars.iter().map(|b| (b.system, b.ratio)).collect();
        assert_eq!(bars, [(System::Rmi, 1.0), (System::RmiMt, 0.5), (System::Tarpc, 0.25)]);
    }

    #[test]
    fn raw_tcp_on_the_multi_thread_runtime_is_a_bar_not_a_workload() {
        let r = results(&[
            ("rmi.seq.pinned", outcome(50_000, 1.0, None)),
            ("rmi.mt.seq.pinned", outcome(40_000, 1.0, None)),
            ("tcp.seq.pinned", outcome(60_000, 1.0, None)),
            ("tcp.mt.seq.pinned", outcome(45_000, 1.0, None)),
        ]);
        let g = groups(&r);
        assert_eq!(g.len(), 1, "one group, not one for `mt.seq.pinned` as well");
        let bars: Vec<(System, f64)> = g[0].bars.iter().map(|b| (b.system, b.ratio)).collect();
        assert_eq!(
            bars,
            [(System::Rmi, 1.0), (System::RmiMt, 0.8), (System::Tcp, 1.2), (System::TcpMt, 0.9)]
        );
    }

    #[test]
    fn a_workload_without_rmi_or_without_a_baseline_has_no_group() {
        let r = results(&[
            ("tcp.seq", outcome(12_000, 2.0, None)),
            ("tarpc.seq", outcome(10_000, 2.0, None)),
            ("rmi.callback", outcome(10_000, 2.0, None)),
            ("rmi.hmac.seq", outcome(10_000, 2.0, None)),
        ]);
        assert!(groups(&r).is_empty());
    }

    #[test]
    fn pyro_rows_are_found_under_their_own_names() {
        let r = results(&[
            ("rmi.seq", outcome(20_000, 2.0, None)),
            ("pyro.seq.msgpack", outcome(2_000, 2.0, None)),
            ("pyro.seq.serpent", outcome(1_000, 2.0, None)),
            ("rmi.lookup.pipe64", outcome(100_000, 1.0, None)),
            ("pyro.lookup", outcome(4_000, 1.0, None)),
        ]);
        let g = groups(&r);
        let keys: Vec<&str> = g.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["seq", "lookup.pipe64"]);
        assert_eq!(g[0].bars[1].system, System::Pyro);
        assert!((g[0].bars[1].ratio - 0.1).abs() < 1e-12);
        assert!((g[1].bars[1].ratio - 0.04).abs() < 1e-12);
    }

    #[test]
    fn payloads_compare_megabytes_per_second() {
        let r = results(&[
            ("rmi.payload", outcome(40, 0.2, Some(40 << 20))),
            ("pyro.payload", outcome(10, 0.1, Some(10 << 20))),
        ]);
        let g = groups(&r);
        assert_eq!(g[0].measure, Measure::Throughput);
        assert_eq!(g[0].unit, "MB/s");
        assert!((g[0].bars[0].value - 40.0 * 1_048_576.0 / 1e6 / 0.2).abs() < 1e-6);
        assert!((g[0].bars[1].ratio - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_run_that_measured_nothing_has_no_bar() {
        let r = results(&[
            ("rmi.seq", outcome(10_000, 2.0, None)),
            ("tcp.seq", outcome(0, 2.0, None)),
            ("tarpc.seq", outcome(10, 0.0, None)),
        ]);
        assert!(groups(&r).is_empty());
    }

    #[test]
    fn an_unknown_workload_with_a_baseline_gets_a_group_of_its_own() {
        let r = results(&[
            ("rmi.pipe256", outcome(10_000, 1.0, None)),
            ("tcp.pipe256", outcome(20_000, 1.0, None)),
            ("rmi.seq", outcome(10_000, 1.0, None)),
            ("tcp.seq", outcome(20_000, 1.0, None)),
        ]);
        let keys: Vec<String> = groups(&r).into_iter().map(|g| g.title).collect();
        assert_eq!(keys, ["1 call at a time", "pipe256"]);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for bad in [
            "",
            "not json",
            "[1, 2]",
            r#"{"rmi.seq": 3}"#,
            r#"{"rmi.seq": {"ops": -1, "secs": 1.0}}"#,
            r#"{"rmi.seq": {"ops": 1}}"#,
            r#"{"rmi.seq": {"ops": 1, "secs": "fast"}}"#,
            r#"{"rmi.seq": {"ops": 1, "secs": 1.0"#,
        ] {
            let e = match parse(bad) {
                Ok(r) => panic!("{bad:?} parsed: {r:?}"),
                Err(e) => format!("{e:#}"),
            };
            assert!(e.contains("rmi-bench --save"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = match load("/nonexistent/rmi-bench.json") {
            Ok(_) => panic!("a missing file loaded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("/nonexistent/rmi-bench.json"), "{e}");
    }

    #[test]
    fn the_svg_has_the_names_the_legend_and_the_ratios() {
        let r = results(&[
            ("rmi.seq", outcome(10_000, 2.0, None)),
            ("rmi.mt.seq", outcome(9_000, 2.0, None)),
            ("tcp.seq", outcome(12_000, 2.0, None)),
            ("pyro.seq.msgpack", outcome(1_000, 2.0, None)),
            ("rmi.payload", outcome(40, 0.2, Some(40 << 20))),
            ("tonic.payload", outcome(40, 0.4, Some(40 << 20))),
        ]);
        let svg = match draw(&groups(&r), 1, "test.json") {
            Ok(svg) => svg,
            Err(e) => panic!("drawing: {e:#}"),
        };
        for wanted in [
            "1 call at a time",
            "10 MiB argument",
            "rmi (current-thread runtime)",
            "rmi, multi-thread runtime (rmi.mt)",
            "raw TCP (the limit)",
            "tonic (gRPC)",
            "Pyro5 (msgpack)",
            "1.20× (6.00 k calls/s)",
            "0.50× (105 MB/s)",
            "1 = rmi",
            "speed relative to rmi (log scale)",
        ] {
            assert!(svg.contains(wanted), "no {wanted:?} in the SVG");
        }
        assert!(!svg.contains("tarpc"), "tarpc drawn without a row");
    }

    #[test]
    fn ratios_and_figures_read_well() {
        assert_eq!(ratio_text(1.0), "1.00");
        assert_eq!(ratio_text(0.56), "0.56");
        assert_eq!(ratio_text(14.2), "14");
        assert_eq!(ratio_text(0.0049), "0.0049");
        assert_eq!(ratio_text(0.062), "0.062");
        assert_eq!(figure_text(7197.0), "7.20 k");
        assert_eq!(figure_text(190_900.0), "191 k");
        assert_eq!(figure_text(57_040_000.0), "57.0 M");
        assert_eq!(figure_text(909.4), "909");
        assert_eq!(tick_text(0.001), "0.001");
        assert_eq!(tick_text(100.0), "100");
    }

    #[test]
    fn the_axis_holds_every_bar() {
        let r = results(&[
            ("rmi.oneway", outcome(200_000, 0.3, None)),
            ("pyro.oneway", outcome(50_000, 15.0, None)),
            ("rmi.stream.items", outcome(100_000_000, 2.0, None)),
            ("tcp.stream.items", outcome(600_000_000, 2.0, None)),
        ]);
        let g = groups(&r);
        let (lo, hi) = axis_range(&g);
        assert_eq!((lo, hi), (0.001, 100.0));
    }
}
