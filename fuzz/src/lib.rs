//! The fuzz harness of the pure core: one function per fuzz target, each taking the raw bytes
//! libFuzzer hands it, with the properties it checks beyond "no panic".
//!
//! Shared by the fuzz targets (`fuzz_targets/*.rs`, one line each) and by the core's plain
//! test `core/tests/fuzz_regressions.rs`, which includes this file as a module and replays
//! every committed seed (`fuzz/corpus/<target>/`) and every regression
//! (`fuzz/regressions/<target>/`) through [`TARGETS`]. So a structure-aware target decodes
//! its bytes here, with the same pinned `arbitrary`, whichever side runs it.
//!
//! Included as a module elsewhere, nothing here may name `crate::`: siblings are `super::`.
//! A property that fails is a panic (`assert!`): that is what the fuzzer looks for.

pub mod config;
pub mod gen;
pub mod json;
pub mod keys;
pub mod redact;
pub mod revocation;
pub mod rules;
pub mod token;
pub mod token_spec;

/// A fuzz target: the bytes libFuzzer hands it.
pub type Target = fn(&[u8]);

/// Every fuzz target by name (the name of its `fuzz_targets/<name>.rs` and of its corpus and
/// regression folders).
pub const TARGETS: [(&str, Target); 11] = [
    ("token", token::token),
    ("token_structured", token_spec::token_structured),
    ("logout", token_spec::logout),
    ("jwks", config::jwks),
    ("discovery", config::discovery),
    ("json", json::json),
    ("claim_path", json::claim_path),
    ("rule_compile", rules::rule_compile),
    ("rule_eval", rules::rule_eval),
    ("redact", redact::redact),
    ("revocation", revocation::revocation),
];

/// A property does not hold: what the fuzzer looks for, reported as a panic.
#[expect(clippy::panic, reason = "a broken property must stop the fuzzer")]
pub fn broken(what: std::fmt::Arguments) -> ! {
    panic!("{what}")
}

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
