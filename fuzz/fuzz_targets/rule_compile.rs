#![no_main]
// The property checks live in the harness (fuzz/src/rules.rs), shared with the replay test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| oidc_authz_fuzz::rules::rule_compile(data));
