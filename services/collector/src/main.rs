//! `collector`: the airport frame collector (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("collector", |shutdown| async move {
        let config = collector::Config::from_lookup(&Lookup::env())?;
        collector::run(config, shutdown).await
    })
}
