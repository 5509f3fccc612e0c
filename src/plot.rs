//! Plots of a finished run (`tapwheel plot`, SPEC §19): probe waveforms, temperatures and channel
//! occupancy, one panel each, drawn with `plotters` into a PNG.
//!
//! The input is a run directory as `tapwheel run --out DIR` writes it: `DIR/report.json` (for
//! `tick_hz`, `end_tick`, `probes`, `probe_sources` and `channels`), `DIR/probes/NAME.csv`
//! (`tick,seq,batch,channel,frame,value`) and, when the run recorded it, `DIR/occupancy.csv`
//! (`tick,channel,occupancy`). Nothing is re-run: the plot shows exactly what the run wrote.
//!
//! The rules, each with a runnable example below:
//! - the x axis is time in seconds, `tick / tick_hz`, shared by every panel and running from 0 to
//!   the run's `end_tick` (or the latest sample, if later);
//! - a token of `F` frames is drawn frame-expanded: frame `f` of a token visible at tick `t` is the
//!   sample at `(t + f) / tick_hz` (SPEC §7: one frame is one sample at `tick_hz`), and each
//!   `(batch, channel)` row is its own line, at most [`MAX_ROWS`] of them per panel;
//! - a probe fed by a `.temp` tap (report.json `probe_sources`, SPEC §14) is a temperature panel
//!   (y in kelvin); any other probe a value panel;
//! - occupancy is a step function: a channel holds its count until the next row changes it, and
//!   the last count holds to the end of the axis;
//! - non-finite values (`NaN`, `inf`) are left out of the lines.
//!
//! ```
//! use tapwheel::plot::{probe_series, Series};
//! // Two tokens of 1 channel × 2 frames at 1 kHz, visible at ticks 10 and 20.
//! let csv = "tick,seq,batch,channel,frame,value\n\
//!            10,0,0,0,0,1\n10,0,0,0,1,2\n20,1,0,0,0,3\n20,1,0,0,1,4\n";
//! let s = probe_series(csv, "p.csv", 1000.0).unwrap();
//! assert_eq!(s.tokens, 2);
//! assert_eq!(s.rows_total, 1);
//! assert_eq!(s.rows[0].points, vec![(0.010, 1.0), (0.011, 2.0), (0.020, 3.0), (0.021, 4.0)]);
//! ```
//!
//! From Rust, [`plot_run`] does what the command does:
//!
//! ```
//! use tapwheel::{Engine, RunOptions, Scene};
//! use tapwheel::plot::{plot_run, PlotOptions, DEFAULT_WIDTH, DEFAULT_PANEL_HEIGHT};
//! let scene = Scene::parse(r#"Scene(version: 1, name: "doc", tick_hz: 100.0,
//!     nodes: [Node(name: "src", kernel: Ramp(start: 0.0, step: 0.5), period: Some(1), count: Some(20)),
//!             Node(name: "out", kernel: Probe)],
//!     edges: [Edge(from: "src.out", to: "out.in")])"#, "doc.ron", ".".into()).unwrap();
//! let mut engine = Engine::from_scene(&scene, RunOptions::default()).unwrap();
//! engine.run();
//! let dir = std::env::temp_dir().join(format!("tapwheel_plot_doc_{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("probes")).unwrap();
//! std::fs::write(dir.join("report.json"), engine.report().to_json_pretty()).unwrap();
//! for p in engine.probes() {
//!     std::fs::write(dir.join("probes").join(format!("{}.csv", p.name)),
//!                    tapwheel::report::probe_csv(p)).unwrap();
//! }
//! let png = dir.join("plot.png");
//! let summary = plot_run(&dir, &png, &PlotOptions::default()).unwrap();
//! assert_eq!((summary.width, summary.height), (DEFAULT_WIDTH, DEFAULT_PANEL_HEIGHT));
//! assert_eq!(summary.panels[0].name, "out");
//! assert_eq!(summary.panels[0].samples, 20);
//! assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use crate::error::{Diagnostic, Error, Location, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Image width in pixels when none is given (`--width`).
pub const DEFAULT_WIDTH: u32 = 1200;
/// Height of one panel in pixels when none is given (`--panel-height`); the image is
/// `panels × panel height` tall.
pub const DEFAULT_PANEL_HEIGHT: u32 = 300;
/// With no `--probe` and no `--channel`, every probe is plotted, up to this many panels (the
/// first in report order; the rest are listed in [`PlotSummary::omitted`]).
pub const MAX_DEFAULT_PANELS: usize = 12;
/// At most this many `(batch, channel)` rows of a multi-element probe are drawn (the first, in
/// `(batch, channel)` order); the panel title says how many there were.
pub const MAX_ROWS: usize = 8;
/// Accepted image sizes: width and panel height in pixels, and the total height.
pub const WIDTH_RANGE: std::ops::RangeInclusive<u32> = 200..=8000;
pub const PANEL_HEIGHT_RANGE: std::ops::RangeInclusive<u32> = 100..=2000;
pub const MAX_HEIGHT: u32 = 32_000;

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`): text
/// needs no system font.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// What `tapwheel plot` draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotOptions {
    /// Probes to plot, one panel each, in this order. With neither probes nor channels: every
    /// probe (up to [`MAX_DEFAULT_PANELS`]).
    pub probes: Vec<String>,
    /// Channels (`from.tap->to.tap`) whose occupancy to plot from `occupancy.csv`, after the
    /// probes.
    pub channels: Vec<String>,
    /// Image width (pixels).
    pub width: u32,
    /// Height of each panel (pixels).
    pub panel_height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            probes: Vec::new(),
            channels: Vec::new(),
            width: DEFAULT_WIDTH,
            panel_height: DEFAULT_PANEL_HEIGHT,
        }
    }
}

/// What a panel shows; decides its y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    /// A probe's values.
    Probe,
    /// A probe fed by a `.temp` tap: kelvin.
    Temperature,
    /// A channel's occupancy from `occupancy.csv`: tokens.
    Occupancy,
}

impl PanelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PanelKind::Probe => "probe",
            PanelKind::Temperature => "temperature",
            PanelKind::Occupancy => "occupancy",
        }
    }

    /// The y axis label, with its unit.
    pub fn y_label(self) -> &'static str {
        match self {
            PanelKind::Probe => "value",
            PanelKind::Temperature => "temperature (K)",
            PanelKind::Occupancy => "tokens",
        }
    }
}

/// One line: `(seconds, value)` points in drawing order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A probe CSV read for plotting ([`probe_series`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSeries {
    /// One series per `(batch, channel)` row, at most [`MAX_ROWS`].
    pub rows: Vec<Series>,
    /// Rows the tokens have (`batch × channels`).
    pub rows_total: usize,
    /// Tokens in the file.
    pub tokens: usize,
}

/// One panel of the figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub kind: PanelKind,
    /// The probe or channel name.
    pub name: String,
    /// The caption drawn above the panel.
    pub title: String,
    pub series: Vec<Series>,
    /// Tokens (probes) or occupancy rows (channels) read.
    pub samples: usize,
    /// `(batch, channel)` rows of the probe's tokens (1 for occupancy).
    pub rows_total: usize,
}

/// What [`plot_run`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSummary {
    pub file: PathBuf,
    pub width: u32,
    pub height: u32,
    pub panels: Vec<Panel>,
    /// Probes left out by the [`MAX_DEFAULT_PANELS`] cap (empty when probes were chosen).
    pub omitted: Vec<String>,
}

impl PlotSummary {
    /// The summary as `tapwheel plot --format json` prints it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "file": self.file.display().to_string(),
            "width": self.width,
            "height": self.height,
            "panels": self.panels.iter().map(|p| serde_json::json!({
                "kind": p.kind.as_str(),
                "name": p.name,
                "title": p.title,
                "y_label": p.kind.y_label(),
                "samples": p.samples,
                "rows": p.rows_total,
                "lines": p.series.len(),
            })).collect::<Vec<_>>(),
            "omitted": self.omitted,
        })
    }
}

/// A finished run's directory, as read from its `report.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDir {
    pub dir: PathBuf,
    pub scene: String,
    pub tick_hz: f64,
    pub end_tick: u64,
    /// Probes in report order, with their token counts.
    pub probes: Vec<(String, u64)>,
    /// `probe_sources`: the tap feeding each probe (`node.tap`, gathers joined by `+`).
    pub probe_sources: BTreeMap<String, String>,
    /// Channel names by channel index (report.json `channels`).
    pub channels: Vec<String>,
}

fn e(code: &'static str, location: Location, message: String) -> Error {
    Error::invalid(Diagnostic {
        code,
        message,
        location,
    })
}

fn file_loc(path: &Path, line: u64) -> Location {
    Location::File {
        path: path.display().to_string(),
        line: line as usize,
        col: 1,
    }
}

/// A name safe to use as a file name: what node names are (`[A-Za-z0-9_]+`).
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RunDir {
    /// Reads `dir/report.json` (E470 when it is missing, unreadable, not JSON, or lacks a
    /// positive `tick_hz`, `end_tick` or `probes`).
    pub fn open(dir: &Path) -> Result<RunDir> {
        let path = dir.join("report.json");
        let bad = |why: String| {
            e(
                "E470",
                Location::Nowhere,
                format!(
                    "`{}` is not a finished run's directory: {why} (write one with `tapwheel run SCENE --out DIR`)",
                    dir.display()
                ),
            )
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|err| bad(format!("cannot read {}: {err}", path.display())))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|err| bad(format!("{} is not JSON: {err}", path.display())))?;
        let tick_hz = v
            .get("tick_hz")
            .and_then(Value::as_f64)
            .filter(|h| h.is_finite() && *h > 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "{} has no positive `tick_hz` number",
                    path.display()
                ))
            })?;
        let end_tick = v
            .get("end_tick")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("{} has no `end_tick` integer", path.display())))?;
        let probes_obj = v
            .get("probes")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("{} has no `probes` object", path.display())))?;
        let mut probes = Vec::new();
        for (name, count) in probes_obj {
            if !plain_name(name) {
                return Err(bad(format!(
                    "{} names a probe `{name}` that is not `[A-Za-z0-9_]+`",
                    path.display()
                )));
            }
            probes.push((name.clone(), count.as_u64().unwrap_or(0)));
        }
        let probe_sources = v
            .get("probe_sources")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, s)| Some((k.clone(), s.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut channels: Vec<(u64, String)> = v
            .get("channels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .enumerate()
                    .map(|(i, (name, c))| {
                        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
                        (index, name.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        channels.sort();
        Ok(RunDir {
            dir: dir.to_path_buf(),
            scene: v
                .get("scene")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            tick_hz,
            end_tick,
            probes,
            probe_sources,
            channels: channels.into_iter().map(|(_, n)| n).collect(),
        })
    }

    /// A probe fed by `.temp` taps only (SPEC §14) records kelvin.
    ///
    /// ```
    /// # use tapwheel::plot::RunDir;
    /// let mut run = RunDir { dir: ".".into(), scene: "s".into(), tick_hz: 1.0, end_tick: 0,
    ///     probes: vec![], probe_sources: Default::default(), channels: vec![] };
    /// run.probe_sources.insert("t".into(), "core.temp".into());
    /// run.probe_sources.insert("v".into(), "core.out".into());
    /// assert!(run.is_temperature("t") && !run.is_temperature("v") && !run.is_temperature("x"));
    /// ```
    pub fn is_temperature(&self, probe: &str) -> bool {
        self.probe_sources
            .get(probe)
            .is_some_and(|s| !s.is_empty() && s.split('+').all(|t| t.ends_with(".temp")))
    }

    /// `DIR/probes/NAME.csv`.
    pub fn probe_path(&self, probe: &str) -> PathBuf {
        self.dir.join("probes").join(format!("{probe}.csv"))
    }

    /// `DIR/occupancy.csv`.
    pub fn occupancy_path(&self) -> PathBuf {
        self.dir.join("occupancy.csv")
    }

    /// The end of the time axis in seconds.
    pub fn end_seconds(&self) -> f64 {
        self.end_tick as f64 / self.tick_hz
    }
}

/// Column indices of `names` in a CSV header (E472 naming the missing ones).
fn columns<const N: usize>(
    headers: &csv::StringRecord,
    names: [&str; N],
    file: &Path,
) -> Result<[usize; N]> {
    let mut out = [0; N];
    let mut missing = Vec::new();
    for (k, name) in names.iter().enumerate() {
        match headers.iter().position(|h| h.trim() == *name) {
            Some(i) => out[k] = i,
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(e(
            "E472",
            file_loc(file, 1),
            format!(
                "{} lacks the column(s) {} (the header must name {})",
                file.display(),
                missing.join(", "),
                names.join(",")
            ),
        ))
    }
}

fn field<T: std::str::FromStr>(
    rec: &csv::StringRecord,
    col: usize,
    name: &str,
    file: &Path,
) -> Result<T> {
    let line = rec.position().map_or(0, |p| p.line());
    let raw = rec.get(col).unwrap_or("").trim();
    raw.parse().map_err(|_| {
        e(
            "E472",
            file_loc(file, line),
            format!("{}: `{raw}` is not a valid `{name}`", file.display()),
        )
    })
}

fn csv_error(file: &Path, err: csv::Error) -> Error {
    let line = err.position().map_or(0, |p| p.line());
    e(
        "E472",
        file_loc(file, line),
        format!("{} is not a readable CSV file: {err}", file.display()),
    )
}

/// A `(batch, channel)` row of a token.
type Row = (u64, u64);

/// Reads a probe CSV (`tick,seq,batch,channel,frame,value`, as `tapwheel run` writes it) into
/// lines: one per `(batch, channel)` row (the first [`MAX_ROWS`]), frame `f` of a token at tick
/// `t` at `(t + f) / tick_hz` seconds. `file` names the file in errors (E472: a missing column, a
/// malformed row).
///
/// A token of 2 channels gives two lines, labelled by channel:
///
/// ```
/// use tapwheel::plot::probe_series;
/// let csv = "tick,seq,batch,channel,frame,value\n5,0,0,0,0,1.5\n5,0,0,1,0,-1\n";
/// let s = probe_series(csv, "p.csv", 10.0).unwrap();
/// assert_eq!(s.rows.len(), 2);
/// assert_eq!((s.rows[0].label.as_str(), s.rows[0].points.clone()), ("ch 0", vec![(0.5, 1.5)]));
/// assert_eq!((s.rows[1].label.as_str(), s.rows[1].points.clone()), ("ch 1", vec![(0.5, -1.0)]));
/// let err = probe_series("tick,value\n1,2\n", "p.csv", 10.0).unwrap_err().to_string();
/// assert!(err.contains("E472") && err.contains("seq, batch, channel, frame"));
/// ```
pub fn probe_series(csv_text: &str, file: &str, tick_hz: f64) -> Result<ProbeSeries> {
    let path = Path::new(file);
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = rdr.headers().map_err(|err| csv_error(path, err))?.clone();
    let [tick, seq, batch, channel, frame, value] = columns(
        &headers,
        ["tick", "seq", "batch", "channel", "frame", "value"],
        path,
    )?;
    // Rows in first-seen order; `(batch, channel)` → index into `rows`.
    let mut index: BTreeMap<Row, usize> = BTreeMap::new();
    let mut rows: Vec<(Row, Vec<(f64, f64)>)> = Vec::new();
    let mut tokens = 0usize;
    let mut last_seq: Option<u64> = None;
    for rec in rdr.records() {
        let rec = rec.map_err(|err| csv_error(path, err))?;
        let t: u64 = field(&rec, tick, "tick", path)?;
        let s: u64 = field(&rec, seq, "seq", path)?;
        let b: u64 = field(&rec, batch, "batch", path)?;
        let c: u64 = field(&rec, channel, "channel", path)?;
        let f: u64 = field(&rec, frame, "frame", path)?;
        let v: f32 = field(&rec, value, "value", path)?;
        if last_seq != Some(s) {
            tokens += 1;
            last_seq = Some(s);
        }
        let next = index.len();
        let i = *index.entry((b, c)).or_insert(next);
        if i == rows.len() {
            rows.push(((b, c), Vec::new()));
        }
        if i < MAX_ROWS && v.is_finite() {
            let x = (t as f64 + f as f64) / tick_hz;
            rows[i].1.push((x, v as f64));
        }
    }
    let rows_total = rows.len();
    let batched = rows.iter().any(|((b, _), _)| *b > 0);
    let rows = rows
        .into_iter()
        .take(MAX_ROWS)
        .map(|((b, c), points)| Series {
            label: if batched {
                format!("b{b} ch {c}")
            } else {
                format!("ch {c}")
            },
            points,
        })
        .collect();
    Ok(ProbeSeries {
        rows,
        rows_total,
        tokens,
    })
}

/// Reads `occupancy.csv` (`tick,channel,occupancy`; the channel by name, or by index into
/// `channels`) into `(seconds, tokens)` points per channel name, in file order. E472 for a
/// missing column or a malformed row.
///
/// ```
/// use tapwheel::plot::occupancy_series;
/// let csv = "tick,channel,occupancy\n0,a.out->b.in,1\n4,1,2\n6,a.out->b.in,0\n";
/// let names = vec!["a.out->b.in".to_string(), "b.out->c.in".to_string()];
/// let occ = occupancy_series(csv, "occupancy.csv", 1000.0, &names).unwrap();
/// assert_eq!(occ["a.out->b.in"], vec![(0.0, 1.0), (0.006, 0.0)]);
/// assert_eq!(occ["b.out->c.in"], vec![(0.004, 2.0)]);
/// ```
pub fn occupancy_series(
    csv_text: &str,
    file: &str,
    tick_hz: f64,
    channels: &[String],
) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let path = Path::new(file);
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes());
    let headers = rdr.headers().map_err(|err| csv_error(path, err))?.clone();
    let [tick, channel, occupancy] = columns(&headers, ["tick", "channel", "occupancy"], path)?;
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|err| csv_error(path, err))?;
        let t: u64 = field(&rec, tick, "tick", path)?;
        let n: u64 = field(&rec, occupancy, "occupancy", path)?;
        let raw = rec.get(channel).unwrap_or("").trim();
        let name = match raw.parse::<usize>() {
            Ok(i) if !channels.iter().any(|c| c == raw) => match channels.get(i) {
                Some(c) => c.clone(),
                None => raw.to_string(),
            },
            _ => raw.to_string(),
        };
        out.entry(name)
            .or_default()
            .push((t as f64 / tick_hz, n as f64));
    }
    Ok(out)
}

/// A step function through `points` (each value holds until the next point), held to `x_end`.
///
/// ```
/// use tapwheel::plot::steps;
/// assert_eq!(steps(&[(0.0, 1.0), (2.0, 3.0)], 5.0),
///            vec![(0.0, 1.0), (2.0, 1.0), (2.0, 3.0), (5.0, 3.0)]);
/// assert_eq!(steps(&[], 5.0), vec![]);
/// ```
pub fn steps(points: &[(f64, f64)], x_end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push((x, points[i - 1].1));
        }
        out.push((x, y));
    }
    if let Some(&(x, y)) = points.last()
        && x_end > x
    {
        out.push((x_end, y));
    }
    out
}

/// Thins a line for drawing on `buckets` pixel columns over `[x0, x1]` without losing its
/// extremes: each run of consecutive points in one column keeps its first, lowest, highest and
/// last point (in their original order). Lines of at most `4 × buckets` points are returned
/// unchanged.
///
/// ```
/// use tapwheel::plot::decimate;
/// let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 / 100.0, if i == 37 { 9.0 } else { 0.0 })).collect();
/// let thin = decimate(&pts, 0.0, 1.0, 2);
/// assert_eq!(thin, vec![(0.0, 0.0), (0.37, 9.0), (0.49, 0.0), (0.5, 0.0), (0.99, 0.0)]);
/// assert_eq!(decimate(&pts, 0.0, 1.0, 25).len(), 100);
/// ```
pub fn decimate(points: &[(f64, f64)], x0: f64, x1: f64, buckets: usize) -> Vec<(f64, f64)> {
    if points.len() <= 4 * buckets || buckets == 0 || x1 <= x0 {
        return points.to_vec();
    }
    let column = |x: f64| (((x - x0) / (x1 - x0)) * buckets as f64).floor() as i64;
    let mut out = Vec::with_capacity(4 * buckets + 4);
    let mut start = 0;
    while start < points.len() {
        let col = column(points[start].0);
        let mut end = start + 1;
        while end < points.len() && column(points[end].0) == col {
            end += 1;
        }
        let run = &points[start..end];
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in run.iter().enumerate() {
            if p.1 < run[lo].1 {
                lo = i;
            }
            if p.1 > run[hi].1 {
                hi = i;
            }
        }
        let mut keep = [0, lo, hi, run.len() - 1];
        keep.sort_unstable();
        let mut prev = None;
        for k in keep {
            if prev != Some(k) {
                out.push(run[k]);
                prev = Some(k);
            }
        }
        start = end;
    }
    out
}

/// The panels [`plot_run`] draws: validates the choice (E471 unknown probe, E473 no
/// `occupancy.csv`, E474 unknown channel, E476 nothing to plot; all listed at once), then reads
/// the CSVs (E472). Also returns the probes left out by the default cap.
pub fn panels(run: &RunDir, opts: &PlotOptions) -> Result<(Vec<Panel>, Vec<String>)> {
    let mut errors = Vec::new();
    let known: Vec<&str> = run.probes.iter().map(|(n, _)| n.as_str()).collect();
    let mut probes: Vec<String> = Vec::new();
    let mut omitted = Vec::new();
    if opts.probes.is_empty() && opts.channels.is_empty() {
        if known.is_empty() {
            errors.push(Diagnostic::nowhere(
                "E476",
                format!(
                    "nothing to plot: the run in {} has no probes (choose channels with --channel)",
                    run.dir.display()
                ),
            ));
        }
        for (i, name) in known.iter().enumerate() {
            if i < MAX_DEFAULT_PANELS {
                probes.push(name.to_string());
            } else {
                omitted.push(name.to_string());
            }
        }
    }
    for p in &opts.probes {
        if !known.contains(&p.as_str()) {
            errors.push(Diagnostic {
                code: "E471",
                message: format!(
                    "the run has no probe `{p}` (its probes: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
                location: Location::Argument("--probe".into()),
            });
        } else if !probes.contains(p) {
            probes.push(p.clone());
        }
    }
    let mut occupancy = BTreeMap::new();
    let mut channels: Vec<String> = Vec::new();
    if !opts.channels.is_empty() {
        let path = run.occupancy_path();
        match std::fs::read_to_string(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                errors.push(Diagnostic {
                    code: "E473",
                    message: format!(
                        "--channel needs {}, which this run did not write (`tapwheel run` records channel occupancy only with `--trace` or `--vcd`)",
                        path.display()
                    ),
                    location: Location::Argument("--channel".into()),
                });
            }
            Err(err) => {
                return Err(e(
                    "E472",
                    Location::Nowhere,
                    format!("cannot read {}: {err}", path.display()),
                ));
            }
            Ok(text) => {
                occupancy = occupancy_series(
                    &text,
                    &path.display().to_string(),
                    run.tick_hz,
                    &run.channels,
                )?;
            }
        }
        for c in &opts.channels {
            let exists = run.channels.iter().any(|k| k == c) || occupancy.contains_key(c);
            if !exists {
                errors.push(Diagnostic {
                    code: "E474",
                    message: format!(
                        "the run has no channel `{c}` (its channels: {})",
                        if run.channels.is_empty() {
                            "none".to_string()
                        } else {
                            run.channels.join(", ")
                        }
                    ),
                    location: Location::Argument("--channel".into()),
                });
            } else if !channels.contains(c) {
                channels.push(c.clone());
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let mut out = Vec::new();
    for name in probes {
        let path = run.probe_path(&name);
        let text = std::fs::read_to_string(&path).map_err(|err| {
            e(
                "E472",
                Location::Nowhere,
                format!("cannot read probe `{name}`'s {}: {err}", path.display()),
            )
        })?;
        let s = probe_series(&text, &path.display().to_string(), run.tick_hz)?;
        let kind = if run.is_temperature(&name) {
            PanelKind::Temperature
        } else {
            PanelKind::Probe
        };
        let mut title = format!("{} {name}", kind.as_str());
        if let Some(src) = run.probe_sources.get(&name).filter(|s| !s.is_empty()) {
            title += &format!(" <- {src}");
        }
        if s.rows_total > s.rows.len() {
            title += &format!("  ({} of {} rows)", s.rows.len(), s.rows_total);
        }
        let mut series = s.rows;
        if series.len() == 1 {
            series[0].label = name.clone();
        }
        out.push(Panel {
            kind,
            title,
            name,
            series,
            samples: s.tokens,
            rows_total: s.rows_total,
        });
    }
    let x_end = x_end(run, &out);
    for name in channels {
        let points = occupancy.remove(&name).unwrap_or_default();
        out.push(Panel {
            kind: PanelKind::Occupancy,
            title: format!("occupancy {name}"),
            samples: points.len(),
            series: vec![Series {
                label: name.clone(),
                points: steps(&points, x_end),
            }],
            name,
            rows_total: 1,
        });
    }
    Ok((out, omitted))
}

/// The end of the shared time axis: the run's end, or the latest sample if later, never 0.
fn x_end(run: &RunDir, panels: &[Panel]) -> f64 {
    let latest = panels
        .iter()
        .flat_map(|p| p.series.iter())
        .flat_map(|s| s.points.iter())
        .map(|p| p.0)
        .fold(run.end_seconds(), f64::max);
    if latest > 0.0 {
        latest
    } else {
        1.0 / run.tick_hz
    }
}

fn size_error(arg: &str, message: String) -> Error {
    e("E106", Location::Argument(arg.into()), message)
}

/// Plots the run in `run_dir` into the PNG file `out` (E475 when it cannot be written, e.g. its
/// folder does not exist). The image is `width` × `panels × panel_height` pixels.
pub fn plot_run(run_dir: &Path, out: &Path, opts: &PlotOptions) -> Result<PlotSummary> {
    if !WIDTH_RANGE.contains(&opts.width) {
        return Err(size_error(
            "--width",
            format!(
                "width {} outside {}..={} pixels",
                opts.width,
                WIDTH_RANGE.start(),
                WIDTH_RANGE.end()
            ),
        ));
    }
    if !PANEL_HEIGHT_RANGE.contains(&opts.panel_height) {
        return Err(size_error(
            "--panel-height",
            format!(
                "panel height {} outside {}..={} pixels",
                opts.panel_height,
                PANEL_HEIGHT_RANGE.start(),
                PANEL_HEIGHT_RANGE.end()
            ),
        ));
    }
    let run = RunDir::open(run_dir)?;
    let (panels, omitted) = panels(&run, opts)?;
    let height = (panels.len() as u64) * u64::from(opts.panel_height);
    if height > u64::from(MAX_HEIGHT) {
        return Err(size_error(
            "--panel-height",
            format!(
                "{} panels of {} pixels make an image taller than {MAX_HEIGHT} pixels: plot fewer probes or lower --panel-height",
                panels.len(),
                opts.panel_height
            ),
        ));
    }
    let height = height as u32;
    let png = render_png(&panels, x_end(&run, &panels), opts.width, opts.panel_height)?;
    std::fs::write(out, &png).map_err(|err| {
        e(
            "E475",
            Location::Argument("-o".into()),
            format!("cannot write the plot to {}: {err}", out.display()),
        )
    })?;
    Ok(PlotSummary {
        file: out.to_path_buf(),
        width: opts.width,
        height,
        panels,
        omitted,
    })
}

/// Tableau 10: distinct, colour-blind-friendly line colours.
const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
];

fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Internal("the bundled font does not load".into()))
    }
}

/// The y range of a panel: its data with 5 % margins (a flat line gets ±1; occupancy starts at
/// 0).
fn y_range(panel: &Panel) -> (f64, f64) {
    let ys = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
    };
    let (mut lo, mut hi) = ys().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if panel.kind == PanelKind::Occupancy {
        return (0.0, (hi.max(1.0) * 1.1).ceil());
    }
    if hi - lo < f64::EPSILON * lo.abs().max(1.0) {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Draws `panels` one above the other on a `width × (panels × panel_height)` canvas sharing the
/// time axis `[0, x_end]` seconds, and encodes it as an 8-bit RGB PNG. Same panels, same bytes.
pub fn render_png(panels: &[Panel], x_end: f64, width: u32, panel_height: u32) -> Result<Vec<u8>> {
    use plotters::prelude::*;
    register_font()?;
    let height = panel_height.saturating_mul(panels.len().max(1) as u32);
    let draw_err = |err: String| Error::Internal(format!("drawing the plot: {err}"));
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (panel, area) in panels.iter().zip(&areas) {
            let (y0, y1) = y_range(panel);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 16))
                .margin(8)
                .margin_right(24)
                .x_label_area_size(44)
                .y_label_area_size(76)
                .build_cartesian_2d(0f64..x_end, y0..y1)
                .map_err(|e| draw_err(e.to_string()))?;
            let whole = |v: &f64| format!("{v:.0}");
            let mut mesh = chart.configure_mesh();
            mesh.x_desc("time (s)")
                .y_desc(panel.kind.y_label())
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 14))
                .light_line_style(RGBColor(235, 235, 235));
            if panel.kind == PanelKind::Occupancy {
                // Token counts are whole numbers: label 0, 1, 2 … (or a round step).
                mesh.y_labels(((y1 - y0) as usize + 1).clamp(2, 11))
                    .y_label_formatter(&whole);
            }
            mesh.draw().map_err(|e| draw_err(e.to_string()))?;
            let legend = panel.series.len() > 1;
            let columns = width as usize;
            for (i, s) in panel.series.iter().enumerate() {
                let (r, g, b) = PALETTE[i % PALETTE.len()];
                let color = RGBColor(r, g, b);
                let points = decimate(&s.points, 0.0, x_end, columns);
                let line = chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| draw_err(e.to_string()))?;
                if legend {
                    line.label(s.label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
                // Few samples: mark each one, so single tokens are visible.
                if panel.kind != PanelKind::Occupancy && s.points.len() <= 64 {
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| draw_err(e.to_string()))?;
                }
            }
            if legend {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(|e| draw_err(e.to_string()))?;
            }
            if panel.series.iter().all(|s| s.points.is_empty()) {
                let (w, h) = area.dim_in_pixel();
                area.draw(&Text::new(
                    "no samples",
                    (w as i32 / 2 - 40, h as i32 / 2),
                    ("sans-serif", 16)
                        .into_font()
                        .color(&RGBColor(120, 120, 120)),
                ))
                .map_err(|e| draw_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Internal(format!("encoding the PNG: {e}")))?;
        w.write_image_data(&rgb)
            .map_err(|e| Error::Internal(format!("encoding the PNG: {e}")))?;
        w.finish()
            .map_err(|e| Error::Internal(format!("encoding the PNG: {e}")))?;
    }
    Ok(png)
}
