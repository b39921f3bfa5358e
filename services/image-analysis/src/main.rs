//! `image-analysis`: the airport image analysis service (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("image-analysis", |shutdown| async move {
        let config = image_analysis::Config::from_lookup(&Lookup::env())?;
        image_analysis::run(config, shutdown).await
    })
}
