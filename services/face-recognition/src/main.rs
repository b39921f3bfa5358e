//! `face-recognition`: the airport face recognition service (see the library docs).

use std::process::ExitCode;

use airport_common::config::Lookup;

fn main() -> ExitCode {
    airport_common::run_main("face-recognition", |shutdown| async move {
        let config = face_recognition::Config::from_lookup(&Lookup::env())?;
        face_recognition::run(config, shutdown).await
    })
}
