//! Pure core of pg_oidc_authz: everything that can be plain Rust, with no Postgres in it.
//!
//! `token` verifies compact JWS/JWT access and ID tokens against issuer key sets and turns
//! them into [`token::Verified`] claims; `config` parses and validates the trust configuration
//! (one row of `oidc.issuers` as JSON) into the verifier's types. Nothing here reads a clock,
//! a setting or the network: callers pass `now` and the configuration in.

#![forbid(unsafe_code)]

pub mod config;
pub mod discovery;
pub mod json;
pub mod path;
pub mod redact;
pub mod revocation;
pub mod rules;
pub mod stats;
pub mod token;

pub use config::{ConfigError, IssuerConfig, TrustConfig};
pub use token::{
    bearer_from_headers, fingerprint, parse_uuid, verify_token, verify_untimed, TokenError,
    Verified,
};
