//! The SQL surface: thin `#[pg_extern]` skins over the cache and the core.

mod admin;
mod claims;
mod rules;
mod stats;
mod status;
