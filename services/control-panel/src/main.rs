//! `control-panel`: the airport dashboard, v1 or v2 by `SERVICE_VERSION` (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("control-panel", |shutdown| async move {
        let config = control_panel::Config::from_lookup(&Lookup::env())?;
        control_panel::run(config, shutdown).await
    })
}
