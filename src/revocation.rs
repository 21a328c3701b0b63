//! `oidc.revocations` and the functions that write it (see `oidc_authz_core::revocation`
//! for what a row revokes; `cache` checks every token against them).

use crate::error::{Error, OrRaise};
use pgrx::prelude::*;
use pgrx::JsonB;

/// `oidc.max_token_lifetime` in seconds: how long after a subject's or a session's
/// revocation a token it revokes can still be unexpired, i.e. how long the row is kept.
#[pg_extern(stable, parallel_safe, name = "_max_token_lifetime")]
fn max_token_lifetime() -> i32 {
    crate::settings::max_token_lifetime()
}

/// Verifies a Back-Channel Logout token (`oidc_authz_core::token::logout`) against the
/// trusted issuers; 28000 naming the failed check when it is not a valid one (a NULL too).
/// What it asks to end, as JSON; `oidc.logout()` records it.
#[pg_extern(stable, name = "_verify_logout")]
fn verify_logout(logout_token: Option<&str>) -> JsonB {
    use oidc_authz_core::token::logout::verify_logout;
    use oidc_authz_core::TokenError;
    let token = logout_token.unwrap_or("");
    if token.is_empty() {
        Error::Token(TokenError::Malformed("no logout token".into())).raise();
    }
    let trust = crate::cache::trust();
    let logout = verify_logout(
        token,
        &trust,
        crate::cache::now(),
        crate::settings::max_token_bytes(),
    )
    .map_err(Error::Token)
    .or_raise();
    JsonB(serde_json::json!({
        "issuer": logout.issuer,
        "sub": logout.sub,
        "sid": logout.sid,
        "jti": logout.jti,
    }))
}

pgrx::extension_sql!(
    r#"
-- Revoked tokens (admin only): a token by its jti, a subject's tokens issued before an
-- instant, a session's tokens by sid. `expires_at` is when the row can no longer match a
-- valid token; the revoke functions purge the rows past it.
CREATE TABLE oidc.revocations (
    kind          text NOT NULL CONSTRAINT revocations_kind CHECK (kind IN ('token', 'subject', 'session')),
    issuer        text NOT NULL CONSTRAINT revocations_issuer CHECK (issuer OPERATOR(pg_catalog.<>) ''),
    value         text NOT NULL CONSTRAINT revocations_value CHECK (value OPERATOR(pg_catalog.<>) ''),
    issued_before timestamptz,
    expires_at    timestamptz NOT NULL CONSTRAINT revocations_expires_at CHECK (pg_catalog.isfinite(expires_at)),
    revoked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, issuer, value),
    CONSTRAINT revocations_issued_before CHECK (CASE WHEN kind OPERATOR(pg_catalog.=) 'subject'
        THEN issued_before IS NOT NULL AND pg_catalog.isfinite(issued_before)
        ELSE issued_before IS NULL END)
);
COMMENT ON TABLE oidc.revocations IS 'Revoked tokens: refused (28000, check revoked) from each session''s next transaction (admin only)';
COMMENT ON COLUMN oidc.revocations.kind IS 'token: the token whose jti is value; subject: tokens of sub = value issued before issued_before; session: tokens whose sid is value';
COMMENT ON COLUMN oidc.revocations.expires_at IS 'When the row can no longer match an unexpired token (then purged)';

CREATE FUNCTION oidc._revocations_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM oidc._invalidate_config(TG_RELID);
    RETURN NULL;
END
$$;
CREATE TRIGGER revocations_changed AFTER INSERT OR UPDATE OR DELETE ON oidc.revocations
    FOR EACH ROW EXECUTE FUNCTION oidc._revocations_changed();
CREATE TRIGGER revocations_truncated AFTER TRUNCATE ON oidc.revocations
    FOR EACH STATEMENT EXECUTE FUNCTION oidc._revocations_changed();
ALTER TABLE oidc.revocations ENABLE ALWAYS TRIGGER revocations_changed;
ALTER TABLE oidc.revocations ENABLE ALWAYS TRIGGER revocations_truncated;
SELECT pg_catalog.pg_extension_config_dump('oidc.revocations', '');

-- Rows that can no longer match anything; run by each revoke function.
CREATE FUNCTION oidc.purge_revocations() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    WITH gone AS (DELETE FROM oidc.revocations WHERE expires_at OPERATOR(pg_catalog.<) now() RETURNING 1)
    SELECT count(*) FROM gone
$$;

CREATE FUNCTION oidc.revoke_token(issuer text, jti text, expires_at timestamptz)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    SELECT oidc.purge_revocations();
    INSERT INTO oidc.revocations AS r (kind, issuer, value, expires_at)
    VALUES ('token', $1, $2, $3)
    ON CONFLICT (kind, issuer, value) DO UPDATE
        SET expires_at = greatest(r.expires_at, excluded.expires_at), revoked_at = now()
    RETURNING r.*
$$;

CREATE FUNCTION oidc.revoke_subject(issuer text, sub text, issued_before timestamptz DEFAULT now())
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    SELECT oidc.purge_revocations();
    INSERT INTO oidc.revocations AS r (kind, issuer, value, issued_before, expires_at)
    VALUES ('subject', $1, $2, $3, $3 OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
    ON CONFLICT (kind, issuer, value) DO UPDATE
        SET issued_before = greatest(r.issued_before, excluded.issued_before),
            expires_at = greatest(r.expires_at, excluded.expires_at), revoked_at = now()
    RETURNING r.*
$$;

CREATE FUNCTION oidc.revoke_session(issuer text, sid text)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    SELECT oidc.purge_revocations();
    INSERT INTO oidc.revocations AS r (kind, issuer, value, expires_at)
    VALUES ('session', $1, $2, now() OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
    ON CONFLICT (kind, issuer, value) DO UPDATE
        SET expires_at = greatest(r.expires_at, excluded.expires_at), revoked_at = now()
    RETURNING r.*
$$;

-- OIDC Back-Channel Logout: a verified logout token revokes its session (when it names
-- one) or its subject's tokens issued before now. Runs as the extension's owner; EXECUTE is
-- for oidc_admin, who grants it to the API backend's role.
CREATE FUNCTION oidc.logout(logout_token text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    l jsonb := oidc._verify_logout(logout_token);
    r oidc.revocations;
BEGIN
    IF l ->> 'sid' IS NOT NULL THEN
        r := oidc.revoke_session(l ->> 'issuer', l ->> 'sid');
    ELSE
        r := oidc.revoke_subject(l ->> 'issuer', l ->> 'sub', now());
    END IF;
    RETURN jsonb_build_object('issuer', r.issuer, 'revoked', r.kind, 'value', r.value,
                              'issued_before', r.issued_before, 'expires_at', r.expires_at,
                              'sub', l -> 'sub', 'jti', l -> 'jti');
END
$$;
"#,
    name = "revocations",
    requires = [
        api::admin::invalidate_config,
        max_token_lifetime,
        verify_logout
    ],
);
