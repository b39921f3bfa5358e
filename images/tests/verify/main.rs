//! Verification of every image `make images` builds, in one test binary so
//! the images are built once (see `support`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod configmaps;
mod dockerfiles;
mod layouts;
mod manifests;
mod plugins;
mod services;
mod support;
