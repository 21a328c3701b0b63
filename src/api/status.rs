//! `oidc.token_status()`: the answer to "why is my claim NULL?". Never raises for a token.

use crate::cache::{current, now, Current};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

#[pg_extern(stable, parallel_safe)]
fn token_status() -> JsonB {
    let status = match current() {
        Current::Anonymous => json!({ "present": false, "source": null, "valid": false }),
        Current::Invalid { error, source } => json!({
            "present": true,
            "source": source.name(),
            "valid": false,
            "check": error.check(),
            "error": error.to_string(),
        }),
        Current::Valid { entry, source } => {
            let v = &entry.verified;
            let now = now();
            let time = v.check_time(now);
            json!({
                "present": true,
                "source": source.name(),
                "valid": time.is_ok(),
                "check": time.as_ref().err().map(|e| e.check()),
                "error": time.as_ref().err().map(|e| e.to_string()),
                "issuer": v.issuer,
                "sub": v.sub,
                "kid": v.kid,
                "alg": v.alg.name(),
                "expires_in": v.expires_in(now),
            })
        }
    };
    JsonB(status)
}
