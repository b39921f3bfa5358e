//! `camera-agent`: one airport camera (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("camera-agent", |shutdown| async move {
        let config = camera_agent::Config::from_lookup(&Lookup::env())?;
        camera_agent::run(config, shutdown).await
    })
}
