#![no_main]
// The property checks live in the harness (fuzz/src/revocation.rs), shared with the replay test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| oidc_authz_fuzz::revocation::revocation(data));
