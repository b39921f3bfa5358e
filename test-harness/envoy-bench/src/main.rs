//! `make bench`: Envoy with no filter, with the harness's test plugin, and
//! with the equivalent native filter, under `wrk`; prints a Markdown table.
//! `--suite fault-injector`: the fault-injector plugin's rows (overhead with
//! no rule matching, and delay precision against Envoy's fault filter).
//! `--suite canary-router`: the canary router deciding every request (new
//! users and sticky cookies) against no filter and Envoy's native weighted
//! routing.
//!
//! Run with `cargo run --release -p envoy-bench --bin envoy-bench -- --help`.
//! Needs the pinned Envoy (`make envoy`) and wrk (`scripts/install-wrk.sh`).

mod canary_router;
mod fault_injector;

use std::process::ExitCode;
use std::time::Duration;

use envoy_rig::bench::{self, Config, Options};
use envoy_rig::{HttpFilter, WasmFilter, WasmRuntime};
use serde_json::json;

const USAGE: &str = "\
usage: envoy-bench [options]

Benchmarks Envoy (one worker, pinned to one CPU) under wrk on loopback and
prints Markdown to stdout, progress to stderr. Suites:

  test-plugin     (default) no filter, the harness's test plugin (V8, and
                  wasmtime when the Envoy build has it), and the equivalent
                  native header-mutation filter
  fault-injector  no filter, the fault-injector plugin with a rule that never
                  matches, Envoy's native fault filter at 0 % and, for
                  reference, the trivial test plugin (V8); then delay
                  precision (10, 100, 500 ms) of the plugin against the native
                  fault filter, timed per request
  canary-router   no filter, Envoy's native weighted routing 90/10, and the
                  canary-router plugin routing on its header over two clusters:
                  every request a new user (assigned, Set-Cookie), then every
                  request with one valid cookie (the sticky path); and the
                  trivial test plugin for reference (the cost of any V8 plugin)

options:
  --suite S         test-plugin, fault-injector or canary-router (default test-plugin)
  --rounds N        measured runs per configuration, alternating (default 5)
  --duration D      length of each run: 5s, 500ms, 1m (default 5s)
  --warmup D        one discarded run per configuration first (default 1s; 0 skips)
  --connections N   wrk connections (default 16)
  --threads N       wrk threads (default 1)
  --path P          request path (default /)
  --delay-samples N fault-injector: timed requests per delay and filter (default 25; 0 skips)
  --no-pin          do not pin Envoy and the load to separate CPUs
  -h, --help        this text";

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    TestPlugin,
    FaultInjector,
    CanaryRouter,
}

/// The parsed command line.
#[derive(Debug, Clone)]
struct Args {
    suite: Suite,
    options: Options,
    delay_samples: usize,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match parse_args(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("envoy-bench: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let command = format!(
        "cargo run --release -p envoy-bench --bin envoy-bench --{}",
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    let result = match parsed.suite {
        Suite::TestPlugin => test_plugin_suite(&parsed, &command),
        Suite::FaultInjector => fault_injector_suite(&parsed, &command),
        Suite::CanaryRouter => canary_router_suite(&parsed, &command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envoy-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test_plugin_suite(args: &Args, command: &str) -> Result<(), String> {
    let report = bench::run(&configs(), &args.options).map_err(|e| e.to_string())?;
    println!("## Envoy: no filter, test plugin, native equivalent\n");
    println!("Command: `{command}`\n");
    print!("{}", report.to_markdown());
    Ok(())
}

fn fault_injector_suite(args: &Args, command: &str) -> Result<(), String> {
    let options = &args.options;
    fault_injector::check_plugin_is_live(&options.envoy)
        .map_err(|e| format!("checking the fault injector's configuration: {e}"))?;
    let report = bench::run(&fault_injector::configs(), options).map_err(|e| e.to_string())?;
    println!(
        "## Envoy: fault injector with no rule matching, no filter, native fault filter at 0 %\n"
    );
    println!("Command: `{command}`\n");
    print!("{}", report.to_markdown());
    println!("\nGoals (against `no filter`):\n");
    print!("{}", fault_injector::overhead_goals(&report));
    if args.delay_samples > 0 {
        let envoy = fault_injector::precision_envoy_options(options, &report.topology);
        let precision =
            fault_injector::delay_precision(args.delay_samples, &envoy, options.progress)?;
        println!("\n## Delay precision: fault injector against the native fault filter\n");
        println!(
            "Envoy {}; {}.\n",
            report.envoy_version,
            report.topology.describe()
        );
        print!(
            "{}",
            fault_injector::precision_table(&precision, args.delay_samples)
        );
    }
    Ok(())
}

fn canary_router_suite(args: &Args, command: &str) -> Result<(), String> {
    let options = &args.options;
    let sticky = canary_router::check_routing(&options.envoy)
        .map_err(|e| format!("checking the canary router's routing: {e}"))?;
    let report =
        bench::run(&canary_router::configs(&sticky), options).map_err(|e| e.to_string())?;
    println!(
        "## Envoy: canary router (no cookie, sticky cookie), native weighted routing, no filter\n"
    );
    println!("Command: `{command}`\n");
    print!("{}", report.to_markdown());
    println!(
        "\nThe plugin's configuration is the `pluginConfig` of `istio/plugins/canary-router.yaml` \
         (v1 90 / v2 10, one header rule, signed cookie); its rows route on `{}` to clusters `v1` \
         and `v2`, the native row uses `weighted_clusters` 90/10, and every cluster is the same \
         upstream. The sticky row sends `-H 'cookie: {}'` (a {} cookie the plugin set on a first \
         request) with every request.",
        canary_router::ROUTE_HEADER,
        sticky.pair,
        sticky.subset
    );
    println!("\nGoals:\n");
    print!("{}", canary_router::goals(&report));
    Ok(())
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
fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut options = Options::default();
    let mut suite = Suite::TestPlugin;
    let mut delay_samples = 25;
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
            "--suite" => {
                suite = match value()?.as_str() {
                    "test-plugin" => Suite::TestPlugin,
                    "fault-injector" => Suite::FaultInjector,
                    "canary-router" => Suite::CanaryRouter,
                    other => return Err(format!("unknown suite {other:?}")),
                }
            }
            "--delay-samples" => delay_samples = number(flag, &value()?)? as usize,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Some(Args {
        suite,
        options,
        delay_samples,
    }))
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
        assert_eq!(defaults.suite, Suite::TestPlugin);
        let defaults = defaults.options;
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
        .unwrap()
        .options;
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
    fn the_fault_injector_suite() {
        let parsed = parse_args(&args(&["--suite", "fault-injector", "--delay-samples=7"]))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.suite, Suite::FaultInjector);
        assert_eq!(parsed.delay_samples, 7);
        assert_eq!(parse_args(&[]).unwrap().unwrap().delay_samples, 25);
        assert!(parse_args(&args(&["--suite", "everything"])).is_err());
    }

    #[test]
    fn the_canary_router_suite() {
        let parsed = parse_args(&args(&["--suite=canary-router"]))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.suite, Suite::CanaryRouter);
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
