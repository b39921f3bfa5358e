//! What a benchmark measured, summarised and rendered as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Options, Topology, WrkResult};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything [`run`](super::run) measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per configuration, in the order given; the first is the baseline.
    pub rows: Vec<Row>,
    /// Where Envoy and the load ran.
    pub topology: Topology,
    /// `envoy --version`, after `version: `.
    pub envoy_version: String,
    /// The wrk command line of a measured run, with `<port>` for the listener.
    pub wrk_command: String,
    /// The options of the run.
    pub options: Options,
    /// Wall-clock time of the whole run, Envoy start-up included.
    pub elapsed: Duration,
}

/// One configuration's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configuration's name.
    pub name: String,
    /// Its measurements, or why there are none.
    pub result: RowResult,
}

/// Measured, or not available in this Envoy.
#[derive(Debug, Clone)]
pub enum RowResult {
    /// The runs and the memory reading.
    Measured(Measured),
    /// Envoy rejected an optional configuration; the reason.
    Unavailable(String),
}

/// The measured runs of one configuration, in round order.
#[derive(Debug, Clone)]
pub struct Measured {
    /// One result per round (warm-up excluded).
    pub runs: Vec<WrkResult>,
    /// Envoy's memory after the load.
    pub memory: Memory,
}

/// Envoy's memory use; `None` when it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS` in `/proc/<pid>/status`).
    pub vm_rss_bytes: Option<u64>,
    /// Heap bytes in use (`allocated` from admin `/memory`).
    pub allocated_bytes: Option<u64>,
}

/// The median and range of one figure over the rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread<T> {
    /// The median (the mean of the middle two for an even count).
    pub median: T,
    /// The smallest value.
    pub min: T,
    /// The largest value.
    pub max: T,
}

impl Spread<f64> {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Self {
            median,
            min: first,
            max: last,
        })
    }
}

impl Measured {
    /// Requests per second over the rounds.
    pub fn throughput(&self) -> Option<Spread<f64>> {
        Spread::of(self.runs.iter().map(|r| r.requests_per_sec))
    }

    /// Median latency (p50) over the rounds, in milliseconds.
    pub fn p50_ms(&self) -> Option<Spread<f64>> {
        Spread::of(self.runs.iter().map(|r| millis(r.p50)))
    }

    /// 99th-percentile latency over the rounds, in milliseconds.
    pub fn p99_ms(&self) -> Option<Spread<f64>> {
        Spread::of(self.runs.iter().map(|r| millis(r.p99)))
    }

    /// Non-2xx responses and socket errors over all rounds.
    pub fn errors(&self) -> u64 {
        self.runs.iter().map(WrkResult::errors).sum()
    }
}

impl Report {
    /// The first row's measurements, which every ratio is relative to.
    pub fn baseline(&self) -> Option<(&str, &Measured)> {
        let row = self.rows.first()?;
        match &row.result {
            RowResult::Measured(measured) => Some((&row.name, measured)),
            RowResult::Unavailable(_) => None,
        }
    }

    /// The report as Markdown: a short description, one table, the commands.
    pub fn to_markdown(&self) -> String {
        let options = &self.options;
        let baseline = self.baseline();
        let base_name = baseline.map_or("the first row", |(name, _)| name);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Envoy `{}`, one worker (`--concurrency {}`), HTTP/1.1 on loopback, {}.",
            self.envoy_version,
            options.envoy.concurrency,
            self.topology.describe()
        );
        let warmup = if options.warmup.is_zero() {
            "without warm-up".to_owned()
        } else {
            format!("after one {} s warm-up each", secs(options.warmup))
        };
        let _ = writeln!(
            out,
            "Each configuration has its own Envoy, all up for the whole run; load goes to one at a time, \
             in alternating order: {} round{} of {} s {warmup}. \
             Figures are medians over the rounds, (min–max) after them; ratios are against `{base_name}` \
             (throughput below 1 and latency above 1 mean slower). \
             Memory is Envoy's after the load: VmRSS from `/proc/<pid>/status` and `allocated` from admin `/memory`, \
             the difference to `{base_name}` in parentheses.",
            options.rounds,
            if options.rounds == 1 { "" } else { "s" },
            secs(options.duration),
        );
        out.push('\n');
        out.push_str(
            "| configuration | req/s | throughput ratio | p50 ms | p50 ratio | p99 ms | p99 ratio | VmRSS MiB | allocated MiB | errors |\n",
        );
        out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for row in &self.rows {
            let name = row.name.replace('|', "\\|");
            match &row.result {
                RowResult::Unavailable(reason) => {
                    let _ = writeln!(
                        out,
                        "| {name} | unavailable: {} | – | – | – | – | – | – | – | – |",
                        reason.replace('|', "\\|")
                    );
                }
                RowResult::Measured(measured) => {
                    let _ = writeln!(out, "| {name} | {} |", measured_cells(measured, baseline));
                }
            }
        }
        out.push('\n');
        let _ = writeln!(out, "Load command per run: `{}`", self.wrk_command);
        let _ = writeln!(out, "Total time: {:.0} s.", self.elapsed.as_secs_f64());
        out
    }
}

fn measured_cells(measured: &Measured, baseline: Option<(&str, &Measured)>) -> String {
    let base = baseline.map(|(_, b)| b);
    let throughput = measured.throughput();
    let p50 = measured.p50_ms();
    let p99 = measured.p99_ms();
    let ratio = |value: Option<Spread<f64>>, base: Option<Spread<f64>>| match (value, base) {
        (Some(v), Some(b)) if b.median > 0.0 => format!("{:.2}", v.median / b.median),
        _ => "–".to_owned(),
    };
    let cells = [
        throughput.map_or_else(dash, |s| spread(s, 0)),
        ratio(throughput, base.and_then(Measured::throughput)),
        p50.map_or_else(dash, |s| spread(s, 3)),
        ratio(p50, base.and_then(Measured::p50_ms)),
        p99.map_or_else(dash, |s| spread(s, 3)),
        ratio(p99, base.and_then(Measured::p99_ms)),
        memory_cell(
            measured.memory.vm_rss_bytes,
            base.and_then(|b| b.memory.vm_rss_bytes),
        ),
        memory_cell(
            measured.memory.allocated_bytes,
            base.and_then(|b| b.memory.allocated_bytes),
        ),
        measured.errors().to_string(),
    ];
    cells.join(" | ")
}

fn dash() -> String {
    "–".to_owned()
}

fn spread(s: Spread<f64>, decimals: usize) -> String {
    format!(
        "{:.decimals$} ({:.decimals$}–{:.decimals$})",
        s.median, s.min, s.max
    )
}

fn memory_cell(bytes: Option<u64>, base: Option<u64>) -> String {
    let Some(bytes) = bytes else {
        return dash();
    };
    let mib = bytes as f64 / MIB;
    match base {
        Some(base) if base != bytes => {
            format!("{mib:.1} ({:+.1})", (bytes as f64 - base as f64) / MIB)
        }
        _ => format!("{mib:.1}"),
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, p50_us: u64, p99_us: u64) -> WrkResult {
        WrkResult {
            requests_per_sec: rps,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p99_us),
            requests: 1000,
            non_2xx: 0,
            socket_errors: 0,
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        let odd = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn the_table_has_ratios_against_the_first_row_and_unavailable_rows() {
        let base = Measured {
            runs: vec![
                run(1000.0, 1000, 2000),
                run(1200.0, 1000, 2000),
                run(1100.0, 1000, 2000),
            ],
            memory: Memory {
                vm_rss_bytes: Some(10 * 1024 * 1024),
                allocated_bytes: Some(4 * 1024 * 1024),
            },
        };
        let plugin = Measured {
            runs: vec![run(550.0, 2000, 3000)],
            memory: Memory {
                vm_rss_bytes: Some(12 * 1024 * 1024),
                allocated_bytes: None,
            },
        };
        let report = Report {
            rows: vec![
                Row {
                    name: "no filter".into(),
                    result: RowResult::Measured(base),
                },
                Row {
                    name: "plugin".into(),
                    result: RowResult::Measured(plugin),
                },
                Row {
                    name: "plugin (other runtime)".into(),
                    result: RowResult::Unavailable("not compiled in".into()),
                },
            ],
            topology: Topology::Pinned { envoy: 0, load: 1 },
            envoy_version: "abc/1.40.0".into(),
            wrk_command: "wrk".into(),
            options: Options::default(),
            elapsed: Duration::from_secs(80),
        };
        let table = report.to_markdown();
        assert!(
            table.contains(
                "| no filter | 1100 (1000–1200) | 1.00 | 1.000 (1.000–1.000) | 1.00 | 2.000 (2.000–2.000) | 1.00 | 10.0 | 4.0 | 0 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| plugin | 550 (550–550) | 0.50 | 2.000 (2.000–2.000) | 2.00 | 3.000 (3.000–3.000) | 1.50 | 12.0 (+2.0) | – | 0 |"),
            "{table}"
        );
        assert!(table.contains("| plugin (other runtime) | unavailable: not compiled in |"));
        assert!(table.contains("Total time: 80 s."));
    }
}
