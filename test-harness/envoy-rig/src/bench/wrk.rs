//! Running `wrk` and reading its `--latency` report.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, RigError};

/// How often a running wrk is checked on.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Grace on top of wrk's own `-d` before a run is declared hung and killed.
const RUN_GRACE: Duration = Duration::from_secs(15);

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec`.
    pub requests_per_sec: f64,
    /// The `50%` line of the latency distribution.
    pub p50: Duration,
    /// The `99%` line of the latency distribution.
    pub p99: Duration,
    /// Completed requests (`N requests in ...`).
    pub requests: u64,
    /// `Non-2xx or 3xx responses` (0 when wrk prints no such line).
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors summed (`Socket errors`).
    pub socket_errors: u64,
}

impl WrkResult {
    /// Failed requests of every kind.
    pub fn errors(&self) -> u64 {
        self.non_2xx.saturating_add(self.socket_errors)
    }
}

/// One wrk invocation, optionally under `taskset`.
#[derive(Debug, Clone)]
pub(crate) struct WrkRun<'a> {
    pub wrk: &'a Path,
    pub cpu: Option<usize>,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
    pub headers: &'a [(String, String)],
    pub url: &'a str,
}

impl WrkRun<'_> {
    /// The argument vector, program first (`taskset -c N wrk ...` when pinned).
    pub(crate) fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(cpu) = self.cpu {
            argv.extend(["taskset".to_owned(), "-c".to_owned(), cpu.to_string()]);
        }
        argv.push(self.wrk.display().to_string());
        argv.push(format!("-t{}", self.threads));
        argv.push(format!("-c{}", self.connections));
        argv.push(format!("-d{}", wrk_duration(self.duration)));
        argv.push("--latency".to_owned());
        for (name, value) in self.headers {
            argv.push("-H".to_owned());
            argv.push(format!("{name}: {value}"));
        }
        argv.push(self.url.to_owned());
        argv
    }

    /// Runs wrk to completion (killed if it overruns) and parses its report.
    pub(crate) fn run(&self) -> Result<WrkResult> {
        let argv = self.argv();
        let shown = argv.join(" ");
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (is wrk installed? run scripts/install-wrk.sh)"
            } else {
                ""
            };
            RigError::io(format!("starting `{shown}`{hint}"), e)
        })?;
        // wrk prints its report once, at the end: far less than a pipe
        // buffer, so waiting before reading cannot deadlock.
        let deadline = Instant::now() + self.duration + RUN_GRACE;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RigError::Timeout {
                        context: format!("load run `{shown}`"),
                        timeout: self.duration + RUN_GRACE,
                    });
                }
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
                Err(e) => return Err(RigError::io(format!("waiting for `{shown}`"), e)),
            }
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        if !status.success() {
            return Err(RigError::http(
                format!("load run `{shown}`"),
                format!("wrk exited with {status}: {stderr}{stdout}"),
            ));
        }
        parse(&stdout).map_err(|reason| {
            RigError::http(
                format!("load run `{shown}`"),
                format!("{reason}; wrk printed:\n{stdout}{stderr}"),
            )
        })
    }
}

/// wrk's `-d` syntax: whole seconds, or milliseconds when shorter than a
/// second or fractional.
fn wrk_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis().max(1))
    }
}

/// Parses wrk's report (as printed with `--latency`).
pub fn parse(output: &str) -> std::result::Result<WrkResult, String> {
    let mut requests_per_sec = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(
                rest.trim()
                    .parse::<f64>()
                    .map_err(|e| format!("Requests/sec {rest:?}: {e}"))?,
            );
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = Some(parse_latency(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = Some(parse_latency(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest
                .trim()
                .parse()
                .map_err(|e| format!("Non-2xx count {rest:?}: {e}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            socket_errors = parse_socket_errors(rest)?;
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(
                count
                    .trim()
                    .parse()
                    .map_err(|e| format!("request count {count:?}: {e}"))?,
            );
        }
    }
    Ok(WrkResult {
        requests_per_sec: requests_per_sec.ok_or("no Requests/sec line")?,
        p50: p50.ok_or("no 50% latency line (was --latency passed?)")?,
        p99: p99.ok_or("no 99% latency line (was --latency passed?)")?,
        requests: requests.ok_or("no \"N requests in\" line")?,
        non_2xx,
        socket_errors,
    })
}

/// A wrk time such as `812.00us`, `1.25ms`, `2.00s` or `1.50m`.
fn parse_latency(text: &str) -> std::result::Result<Duration, String> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|e| format!("latency {text:?}: {e}"))?;
    let seconds_per_unit = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("latency {text:?}: unknown unit {other:?}")),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|e| format!("latency {text:?}: {e}"))
}

/// `connect 0, read 12, write 0, timeout 3` summed.
fn parse_socket_errors(text: &str) -> std::result::Result<u64, String> {
    text.split(',')
        .map(|part| {
            let count = part.split_whitespace().last().unwrap_or_default();
            count
                .parse::<u64>()
                .map_err(|e| format!("socket errors {text:?}: {e}"))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from wrk 4.1.0 (Debian), as `wrk -t1 -cN -dT --latency URL` prints it.

    #[test]
    fn a_healthy_run_through_envoy() {
        let result = parse(include_str!("testdata/healthy.txt")).unwrap();
        assert_eq!(
            result,
            WrkResult {
                requests_per_sec: 36282.16,
                p50: Duration::from_micros(252),
                p99: Duration::from_micros(6210),
                requests: 72708,
                non_2xx: 0,
                socket_errors: 0,
            }
        );
        assert_eq!(result.errors(), 0);
    }

    #[test]
    fn non_2xx_responses_are_counted() {
        let result = parse(include_str!("testdata/non2xx.txt")).unwrap();
        assert_eq!(result.requests, 51210);
        assert_eq!(result.non_2xx, 51210);
        assert_eq!(result.p50, Duration::from_micros(81));
        assert_eq!(result.p99, Duration::from_micros(2840));
        assert_eq!(result.requests_per_sec, 46552.89);
    }

    #[test]
    fn socket_errors_are_summed() {
        let result = parse(include_str!("testdata/socket_errors.txt")).unwrap();
        assert_eq!(result.socket_errors, 17641);
        assert_eq!(result.errors(), 17641);
        assert_eq!(result.p50, Duration::from_micros(49));
        assert_eq!(result.p99, Duration::from_micros(3920));
    }

    #[test]
    fn latencies_in_every_unit() {
        assert_eq!(parse_latency("812.00us"), Ok(Duration::from_micros(812)));
        assert_eq!(parse_latency("1.25ms"), Ok(Duration::from_micros(1250)));
        assert_eq!(parse_latency("2.00s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_latency("1.50m"), Ok(Duration::from_secs(90)));
        assert!(parse_latency("3.00").is_err());
        assert!(parse_latency("3.00ns").is_err());
    }

    #[test]
    fn durations_in_wrk_syntax() {
        assert_eq!(wrk_duration(Duration::from_secs(5)), "5s");
        assert_eq!(wrk_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(wrk_duration(Duration::from_millis(300)), "300ms");
    }

    #[test]
    fn argv_is_pinned_with_taskset() {
        let headers = vec![("x-a".to_owned(), "1".to_owned())];
        let run = WrkRun {
            wrk: Path::new("wrk"),
            cpu: Some(1),
            threads: 1,
            connections: 16,
            duration: Duration::from_secs(5),
            headers: &headers,
            url: "http://127.0.0.1:1/",
        };
        assert_eq!(
            run.argv().join(" "),
            "taskset -c 1 wrk -t1 -c16 -d5s --latency -H x-a: 1 http://127.0.0.1:1/"
        );
    }

    #[test]
    fn a_missing_report_line_is_an_error() {
        let err = parse("Running 1s test @ http://127.0.0.1:1/\n").unwrap_err();
        assert!(err.contains("Requests/sec"), "{err}");
    }
}
