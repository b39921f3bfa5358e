//! `alerts`: the airport alerts service (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("alerts", |shutdown| async move {
        let config = alerts::Config::from_lookup(&Lookup::env())?;
        alerts::run(config, shutdown).await
    })
}
