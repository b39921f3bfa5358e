//! Paths of the `.wasm` files under test, built by this crate's build script
//! for `wasm32-wasip1` with the shipping profile (`wasm`: LTO, `panic =
//! "abort"`, stripped). Depend on this crate and `cargo test` builds the
//! plugins first.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
