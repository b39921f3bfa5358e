//! `section`: the airport section service (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("section", |shutdown| async move {
        let config = section::Config::from_lookup(&Lookup::env())?;
        section::run(config, shutdown).await
    })
}
