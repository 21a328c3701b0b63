//! `#[pg_test]`s: the SQL functions, settings, SQLSTATEs and cache invalidation, inside
//! Postgres. Tokens are signed with the independent `jsonwebtoken` crate.

use pgrx::prelude::*;

#[pg_schema]
#[expect(
    clippy::unwrap_used,
    reason = "test code: a failed call must fail the test loudly"
)]
mod tests {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use pgrx::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const ISS: &str = "https://issuer.test";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn configure(kid: &str) {
        use base64::Engine;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let jwks = json!({"keys": [{"kty": "oct", "kid": kid, "k": k}]});
        Spi::run_with_args(
            "insert into oidc.issuers (issuer, audiences, jwks, algorithms, roles_claim) \
             values ($1, '{api://test}', $2, '{HS256}', 'realm_access.roles') \
             on conflict (issuer) do update set jwks = excluded.jwks",
            &[ISS.into(), pgrx::JsonB(jwks).into()],
        )
        .unwrap();
    }

    fn token(kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_string());
        encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn alice(kid: &str) -> String {
        token(
            kid,
            json!({"iss": ISS, "aud": "api://test", "sub": "6f1c1a52-33f0-4b5e-9a53-2d6c0f5b1a11",
                   "exp": now() + 300, "scope": "read write", "realm_access": {"roles": ["editor"]},
                   "email": "alice@example.test"}),
        )
    }

    fn set_token(t: &str) {
        Spi::run_with_args("select set_config('oidc.token', $1, true)", &[t.into()]).unwrap();
    }

    fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap()
    }

    #[pg_test]
    fn anonymous_without_a_token() {
        assert_eq!(one::<String>("select oidc.sub()"), None);
        assert_eq!(one::<bool>("select oidc.has_scope('read')"), Some(false));
        assert_eq!(
            one::<bool>("select oidc.token_status()->>'present' = 'false'"),
            Some(true)
        );
    }

    #[pg_test]
    fn verified_claims_are_exposed() {
        configure("k1");
        set_token(&alice("k1"));
        assert_eq!(
            one::<String>("select oidc.sub()").as_deref(),
            Some("6f1c1a52-33f0-4b5e-9a53-2d6c0f5b1a11")
        );
        assert_eq!(
            one::<String>("select oidc.uid()::text").as_deref(),
            Some("6f1c1a52-33f0-4b5e-9a53-2d6c0f5b1a11")
        );
        assert_eq!(one::<String>("select oidc.issuer()").as_deref(), Some(ISS));
        assert_eq!(one::<bool>("select oidc.has_scope('write')"), Some(true));
        assert_eq!(
            one::<bool>("select oidc.has_all_scopes('{read,write}')"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("select oidc.has_all_scopes('{read,admin}')"),
            Some(false)
        );
        assert_eq!(
            one::<bool>("select oidc.has_any_scope('{admin,read}')"),
            Some(true)
        );
        assert_eq!(one::<bool>("select oidc.has_role('editor')"), Some(true));
        assert_eq!(
            one::<String>("select oidc.claim_text('/email')").as_deref(),
            Some("alice@example.test")
        );
        assert_eq!(
            one::<String>("select oidc.claim('realm_access.roles')::text").as_deref(),
            Some(r#"["editor"]"#)
        );
        assert_eq!(
            one::<String>("select array_to_string(oidc.scopes(), ',')").as_deref(),
            Some("read,write")
        );
    }

    #[pg_test]
    fn request_jwt_claims_is_never_read() {
        configure("k1");
        Spi::run(r#"select set_config('request.jwt.claims', '{"sub":"mallory"}', true)"#).unwrap();
        assert_eq!(one::<String>("select oidc.sub()"), None);
    }

    #[pg_test]
    fn postgrest_headers_are_the_fallback() {
        configure("k1");
        let headers = json!({"authorization": format!("Bearer {}", alice("k1"))}).to_string();
        Spi::run_with_args(
            "select set_config('request.headers', $1, true)",
            &[headers.into()],
        )
        .unwrap();
        assert_eq!(
            one::<String>("select oidc.token_status()->>'source'").as_deref(),
            Some("request.headers")
        );
        assert!(one::<String>("select oidc.sub()").is_some());
    }

    #[pg_test(error = "invalid token: expired")]
    fn expired_tokens_raise() {
        configure("k1");
        let t = token(
            "k1",
            json!({"iss": ISS, "aud": "api://test", "sub": "a", "exp": now() - 120}),
        );
        set_token(&t);
        one::<String>("select oidc.sub()");
    }

    #[pg_test(error = "invalid token: bad signature")]
    fn forged_tokens_raise() {
        configure("k1");
        // Change one full 6-bit character inside the signature (the last one also carries
        // padding bits, whose change would be a base64 error instead).
        let mut t = alice("k1").into_bytes();
        let i = t.len() - 10;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        set_token(&String::from_utf8(t).unwrap());
        one::<String>("select oidc.sub()");
    }

    #[pg_test]
    fn invalid_token_has_sqlstate_28000_and_status_names_the_check() {
        configure("k1");
        set_token(&alice("nope"));
        assert_eq!(
            one::<String>("select oidc.token_status()->>'check'").as_deref(),
            Some("kid")
        );
        Spi::run(
            "do $$ begin perform oidc.sub(); exception when others then \
             perform set_config('t.state', sqlstate, true); end $$",
        )
        .unwrap();
        assert_eq!(
            one::<String>("select current_setting('t.state')").as_deref(),
            Some("28000")
        );
    }

    #[pg_test]
    fn a_config_change_drops_cached_verifications() {
        configure("k1");
        let t = alice("k1");
        set_token(&t);
        assert!(one::<String>("select oidc.sub()").is_some());
        configure("k2");
        assert_eq!(
            one::<String>("select oidc.token_status()->>'check'").as_deref(),
            Some("kid")
        );
    }

    #[pg_test]
    fn a_revocation_keeps_cached_verifications_and_revokes_its_token() {
        use crate::cache::{current, Current};
        let entry = || match current() {
            Current::Valid { entry, .. } => Some(entry),
            _ => None,
        };
        configure("k1");
        let t = token(
            "k1",
            json!({"iss": ISS, "aud": "api://test", "sub": "s", "jti": "j1", "sid": "x",
                   "iat": now() - 5, "exp": now() + 300}),
        );
        set_token(&t);
        let before = entry().unwrap();
        // Other revocations: the same verified entry, not verified again.
        Spi::run(
            "select oidc.revoke_token('https://issuer.test', 'j2', now() + interval '1 hour')",
        )
        .unwrap();
        Spi::run("select oidc.revoke_session('https://other.test', 'x')").unwrap();
        let after = entry().unwrap();
        assert!(std::rc::Rc::ptr_eq(&before, &after));
        Spi::run(
            "select oidc.revoke_token('https://issuer.test', 'j1', now() + interval '1 hour')",
        )
        .unwrap();
        assert_eq!(
            one::<String>("select oidc.token_status()->>'check'").as_deref(),
            Some("revoked")
        );
        // Deleting the row lifts it, from the same cached entry.
        Spi::run("delete from oidc.revocations").unwrap();
        assert!(std::rc::Rc::ptr_eq(&before, &entry().unwrap()));
    }

    #[pg_test(
        error = "invalid issuer configuration: issuer `https://weak.test`: key `w`: HMAC secret is 16 bytes; HS256 needs at least 32"
    )]
    fn weak_configuration_is_refused() {
        Spi::run(
            r#"insert into oidc.issuers (issuer, audiences, jwks, algorithms)
               values ('https://weak.test', '{a}', '{"keys":[{"kty":"oct","kid":"w","k":"AAAAAAAAAAAAAAAAAAAAAA"}]}', '{HS256}')"#,
        )
        .unwrap();
    }

    #[pg_test]
    fn claim_functions_are_stable_and_not_leakproof() {
        let bad = one::<String>(
            "select string_agg(p.proname, ',' order by p.proname) from pg_proc p \
             join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname = 'oidc' and p.proname not like '\\_%' \
             and (p.provolatile <> 's' or p.proleakproof or p.proparallel <> 's')",
        );
        // Only the functions that write revocations (volatile, parallel unsafe) and the
        // stats (volatile: counters move within a statement) are not stable.
        assert_eq!(
            bad.as_deref(),
            Some("logout,purge_revocations,revoke_session,revoke_subject,revoke_token,stats,stats_reset")
        );
        let n = one::<i64>("select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'oidc'");
        assert!(n.unwrap_or(0) >= 14);
    }

    #[pg_test]
    fn stats_are_per_backend_without_preloading() {
        configure("k1");
        Spi::run("select oidc.stats_reset()").unwrap();
        Spi::run(
            "insert into oidc.rules (name, effect, actions, resource_type, condition) values \
             ('small', 'permit', '{read}', 'n', 'resource.n < 3')",
        )
        .unwrap();
        // Decided per row (no residual), so that each row's decision is counted.
        Spi::run("set local oidc.residuals = off").unwrap();
        set_token(&alice("k1"));
        let allowed =
            "select count(*) from generate_series(1, 5) i where oidc.allow('read', 'n', 'n', i)";
        assert_eq!(one::<i64>(allowed), Some(2));
        let value = |counter: &str, labels: &str| {
            one::<i64>(&format!(
                "select coalesce(sum(value), 0)::bigint from oidc.stats() \
                 where counter = '{counter}' and labels @> '{labels}'"
            ))
        };
        assert_eq!(
            one::<String>("select string_agg(distinct scope, ',') from oidc.stats()").as_deref(),
            Some("backend")
        );
        assert_eq!(
            value("decisions", r#"{"rule": "small", "decision": "allow"}"#),
            Some(2)
        );
        assert_eq!(
            value("decisions", r#"{"rule": null, "decision": "deny"}"#),
            Some(3)
        );
        assert_eq!(value("tokens_verified", r#"{"alg": "HS256"}"#), Some(1));
        assert_eq!(value("cache_misses", "{}"), Some(1));
        // This database's counters; those without a database (tokens, the cache) stay.
        Spi::run("select oidc.stats_reset()").unwrap();
        assert_eq!(value("decisions", "{}"), Some(0));
        assert_eq!(value("cache_misses", "{}"), Some(1));
        Spi::run("select oidc.stats_reset(all_databases => true)").unwrap();
        assert_eq!(value("cache_misses", "{}"), Some(0));
    }

    #[pg_test]
    fn weakening_settings_are_superuser_only() {
        let contexts = one::<String>(
            "select string_agg(name || '=' || context, ',' order by name) from pg_settings \
             where name like 'oidc.%'",
        );
        // oidc.token is user-settable by design and kept out of pg_settings / SHOW ALL.
        assert_eq!(
            contexts.as_deref(),
            Some(concat!(
                "oidc.audit=superuser,oidc.cache_size=superuser,",
                // The worker's: postgresql.conf (or ALTER SYSTEM) only.
                "oidc.fetch_allow_insecure_loopback=sighup,oidc.fetch_ca_file=sighup,",
                "oidc.fetch_max_interval=sighup,oidc.fetch_min_interval=sighup,oidc.fetch_timeout=sighup,",
                "oidc.header_fallback=superuser,oidc.max_token_bytes=superuser,",
                "oidc.max_token_lifetime=superuser,oidc.refresh_cooldown=sighup,oidc.refresh_wait=sighup,",
                "oidc.residuals=superuser"
            ))
        );
    }
}
