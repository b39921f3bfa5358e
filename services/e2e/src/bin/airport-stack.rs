//! `airport-stack SERVICE`: runs one airport service exactly as its own binary
//! does (`section`, `alerts`, `collector`, `camera-agent`, `control-panel`,
//! `image-analysis`, `face-recognition`), configured from the environment.
//! The real-process tests use it because a test can only locate the binaries
//! of its own package. `vision-stub` serves the vision test double (fixed
//! answers at once, not a detector) in place of both vision services, for
//! the local mesh's development-only `--vision-stub`.

use std::process::ExitCode;

use airport_common::BoxError;
use airport_common::config::Lookup;

fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "section" => airport_common::run_main("section", |sd| async move {
            section::run(section::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "alerts" => airport_common::run_main("alerts", |sd| async move {
            alerts::run(alerts::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "collector" => airport_common::run_main("collector", |sd| async move {
            collector::run(collector::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "camera-agent" => airport_common::run_main("camera-agent", |sd| async move {
            camera_agent::run(camera_agent::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "control-panel" => airport_common::run_main("control-panel", |sd| async move {
            control_panel::run(control_panel::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "image-analysis" => airport_common::run_main("image-analysis", |sd| async move {
            image_analysis::run(image_analysis::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "face-recognition" => airport_common::run_main("face-recognition", |sd| async move {
            face_recognition::run(face_recognition::Config::from_lookup(&Lookup::env())?, sd).await
        }),
        "vision-stub" => airport_common::run_main("vision-stub", |sd| async move {
            let addr = Lookup::env().listen_addr()?;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let app = airport_e2e::vision_double_router(airport_e2e::VisionControl::new());
            airport_common::serve(listener, app, sd, airport_common::Health::new())
                .await
                .map_err(BoxError::from)
        }),
        other => {
            eprintln!(
                "usage: airport-stack section|alerts|collector|camera-agent|control-panel|image-analysis|face-recognition|vision-stub (got {other:?})"
            );
            ExitCode::from(2)
        }
    }
}
