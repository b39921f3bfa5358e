//! `make bench`: Envoy with no filter, with the harness's test plugin, and
//! with the equivalent native filter, under `wrk`; prints a Markdown table.
//!
//! Run with `cargo run --release -p envoy-bench -- --help`.
//! Needs the pinned Envoy (`make envoy`) and wrk (`scripts/install-wrk.sh`).

use std::process::ExitCode;
use std::time::Duration;

use envoy_rig::bench::{self, Config, Options};
use envoy_rig::{HttpFilter, WasmFilter, WasmRuntime};
use serde_json::json;

const USAGE: &str = "\
usage: envoy-bench [options]

Benchmarks Envoy (one worker, pinned to one CPU) with no filter, with the
harness's test plugin (V8, and wasmtime when the Envoy build has it), and with
the equivalent native header-mutation filter, under wrk on loopback. Prints a
Markdown table to stdout, progress to stderr.

options:
  --rounds N        measured runs per configuration, alternating (default 5)
  --duration D      length of each run: 5s, 500ms, 1m (default 5s)
  --warmup D        one discarded run per configuration first (default 1s; 0 skips)
  --connections N   wrk connections (default 16)
  --threads N       wrk threads (default 1)
  --path P          request path (default /)
  --no-pin          do not pin Envoy and the load to separate CPUs
  -h, --help        this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("envoy-bench: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match bench::run(&configs(), &options) {
        Ok(report) => {
            println!("## Envoy: no filter, test plugin, native equivalent\n");
            println!(
                "Command: `cargo run --release -p envoy-rig --bin envoy-bench --{}`\n",
                args.iter().map(|a| format!(" {a}")).collect::<String>()
            );
            print!("{}", report.to_markdown());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("envoy-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The rows: the baseline first, since every ratio is relative to it.
fn configs() -> Vec<Config> {
    let test_plugin = |runtime| {
        WasmFilter::new("harness_test_plugin", wasm_artifacts::HARNESS_TEST_PLUGIN).runtime(runtime)
    };
    // What the test plugin does to a request without `x-test-op`; the counter
    // it also increments has no native counterpart.
    let plugin_effects = |config: Config| {
        config
            .expect_upstream_header("x-test-plugin", "seen")
            .expect_response_header("x-test-plugin-saw-status", "200")
    };
    vec![
        Config::new("no filter"),
        plugin_effects(Config::new("test plugin (V8)").filter(test_plugin(WasmRuntime::V8))),
        plugin_effects(
            Config::new("native equivalent (header_mutation)").filter(header_mutation()),
        ),
        plugin_effects(
            Config::new("test plugin (wasmtime)")
                .filter(test_plugin(WasmRuntime::Wasmtime))
                .optional(),
        ),
    ]
}

/// `envoy.filters.http.header_mutation` doing what the test plugin does:
/// append `x-test-plugin: seen` to the request, and the response status to
/// the response (`%RESPONSE_CODE%` is expanded by Envoy's formatter).
fn header_mutation() -> HttpFilter {
    let append = |key: &str, value: &str| {
        json!({
            "append": {
                "header": { "key": key, "value": value },
                "append_action": "APPEND_IF_EXISTS_OR_ADD",
            },
        })
    };
    HttpFilter::Raw(json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [append("x-test-plugin", "seen")],
                "response_mutations": [append("x-test-plugin-saw-status", "%RESPONSE_CODE%")],
            },
        },
    }))
}

/// `Ok(None)` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--rounds" => options.rounds = number(flag, &value()?)?,
            "--duration" => options.duration = duration(flag, &value()?)?,
            "--warmup" => options.warmup = duration(flag, &value()?)?,
            "--connections" => options.connections = number(flag, &value()?)?,
            "--threads" => options.threads = number(flag, &value()?)?,
            "--path" => options.path = value()?,
            "--no-pin" => options.pin = false,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Some(options))
}

fn number(flag: &str, text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|e| format!("{flag} {text:?}: not a count ({e})"))
}

/// `5s`, `500ms`, `1m`, or a bare number of seconds.
fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = |why: String| format!("{flag} {text:?}: {why} (examples: 5s, 500ms, 1m)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|e| bad(format!("{e}")))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" => value * 60.0,
        other => return Err(bad(format!("unknown unit {other:?}"))),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let defaults = parse_args(&[]).unwrap().unwrap();
        assert_eq!(
            (defaults.rounds, defaults.duration),
            (5, Duration::from_secs(5))
        );

        let options = parse_args(&args(&[
            "--rounds",
            "7",
            "--duration=2s",
            "--warmup",
            "500ms",
            "--connections",
            "8",
            "--no-pin",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(options.rounds, 7);
        assert_eq!(options.duration, Duration::from_secs(2));
        assert_eq!(options.warmup, Duration::from_millis(500));
        assert_eq!(options.connections, 8);
        assert!(!options.pin);

        assert!(parse_args(&args(&["--help"])).unwrap().is_none());
        assert!(parse_args(&args(&["--rounds"])).is_err());
        assert!(parse_args(&args(&["--duration", "5h"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn the_baseline_comes_first_and_wasmtime_is_optional() {
        let configs = configs();
        assert_eq!(configs[0].name, "no filter");
        assert!(configs[0].filters.is_empty());
        assert!(
            configs
                .iter()
                .filter(|c| c.optional)
                .all(|c| c.name.contains("wasmtime"))
        );
    }
}
