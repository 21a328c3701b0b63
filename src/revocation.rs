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
        "iat": logout.iat,
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
    -- A session's subject: its tokens without a sid, issued before issued_before, are
    -- refused too (an access token need not carry the session id).
    sub           text CONSTRAINT revocations_sub CHECK (sub OPERATOR(pg_catalog.<>) ''),
    expires_at    timestamptz NOT NULL CONSTRAINT revocations_expires_at CHECK (pg_catalog.isfinite(expires_at)),
    revoked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, issuer, value),
    CONSTRAINT revocations_issued_before CHECK (CASE kind
        WHEN 'subject' THEN issued_before IS NOT NULL AND pg_catalog.isfinite(issued_before) AND sub IS NULL
        WHEN 'session' THEN (sub IS NULL) OPERATOR(pg_catalog.=) (issued_before IS NULL)
                            AND (issued_before IS NULL OR pg_catalog.isfinite(issued_before))
        ELSE issued_before IS NULL AND sub IS NULL END)
);
COMMENT ON TABLE oidc.revocations IS 'Revoked tokens: refused (28000, check revoked) from each session''s next transaction (admin only)';
COMMENT ON COLUMN oidc.revocations.kind IS 'token: the token whose jti is value; subject: tokens of sub = value issued before issued_before; session: tokens whose sid is value';
COMMENT ON COLUMN oidc.revocations.expires_at IS 'When the row can no longer match an unexpired token (then purged)';

CREATE FUNCTION oidc._revocations_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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

-- Rows that can no longer match anything (past expires_at by more than the largest leeway
-- an issuer may have, 5 minutes); run by each revoke function and by the worker.
CREATE FUNCTION oidc.purge_revocations() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (DELETE FROM oidc.revocations
                   WHERE expires_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '5 minutes')
                   RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Stores a revocation, or widens the existing one (the later instant, the later expiry);
-- writes nothing when nothing changes (no session reloads for a repeated revocation).
CREATE FUNCTION oidc._revoke(kind text, issuer text, value text, issued_before timestamptz,
                             sub text, expires_at timestamptz)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc.purge_revocations();
    INSERT INTO oidc.revocations AS r (kind, issuer, value, issued_before, sub, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (kind, issuer, value) DO UPDATE
        SET issued_before = greatest(r.issued_before, excluded.issued_before),
            sub = coalesce(excluded.sub, r.sub),
            expires_at = greatest(r.expires_at, excluded.expires_at)
        WHERE r.issued_before IS DISTINCT FROM greatest(r.issued_before, excluded.issued_before)
           OR r.sub IS DISTINCT FROM coalesce(excluded.sub, r.sub)
           OR r.expires_at OPERATOR(pg_catalog.<) excluded.expires_at;
    SELECT * FROM oidc.revocations r
     WHERE r.kind OPERATOR(pg_catalog.=) $1 AND r.issuer OPERATOR(pg_catalog.=) $2
       AND r.value OPERATOR(pg_catalog.=) $3
$$;

CREATE FUNCTION oidc.revoke_token(issuer text, jti text, expires_at timestamptz)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('token', $1, $2, NULL, NULL, $3)
$$;

CREATE FUNCTION oidc.revoke_subject(issuer text, sub text, issued_before timestamptz DEFAULT now())
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('subject', $1, $2, $3, NULL,
                        $3 OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
$$;

-- With `sub`: also that subject's tokens without a sid issued before now.
CREATE FUNCTION oidc.revoke_session(issuer text, sid text, sub text DEFAULT NULL)
RETURNS oidc.revocations
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT oidc._revoke('session', $1, $2, CASE WHEN $3 IS NOT NULL THEN now() END, $3,
                        now() OPERATOR(pg_catalog.+) make_interval(secs => oidc._max_token_lifetime()))
$$;

-- OIDC Back-Channel Logout: a verified logout token revokes its session (when it names
-- one: with its subject's tokens that carry no sid) or its subject's tokens issued before
-- it. The instant and the expiry come from the logout token itself (its iat, plus a second
-- for the tokens issued within that second), so a replay changes nothing. Runs as the
-- extension's owner; EXECUTE is for oidc_admin, who grants it to the API backend's role.
CREATE FUNCTION oidc.logout(logout_token text) RETURNS pg_catalog.jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    l pg_catalog.jsonb := oidc._verify_logout(logout_token);
    at pg_catalog.timestamptz := pg_catalog.to_timestamp((l OPERATOR(pg_catalog.->>) 'iat')::pg_catalog.float8)
                                 OPERATOR(pg_catalog.+) interval '1 second';
    lifetime pg_catalog.interval := pg_catalog.make_interval(secs => oidc._max_token_lifetime());
    r oidc.revocations;
BEGIN
    IF l OPERATOR(pg_catalog.->>) 'sid' IS NOT NULL THEN
        r := oidc._revoke('session', l OPERATOR(pg_catalog.->>) 'issuer', l OPERATOR(pg_catalog.->>) 'sid',
                          CASE WHEN l OPERATOR(pg_catalog.->>) 'sub' IS NOT NULL THEN at END,
                          l OPERATOR(pg_catalog.->>) 'sub', at OPERATOR(pg_catalog.+) lifetime);
    ELSE
        r := oidc._revoke('subject', l OPERATOR(pg_catalog.->>) 'issuer', l OPERATOR(pg_catalog.->>) 'sub',
                          at, NULL, at OPERATOR(pg_catalog.+) lifetime);
    END IF;
    RETURN pg_catalog.jsonb_build_object('issuer', r.issuer, 'revoked', r.kind, 'value', r.value,
                              'issued_before', r.issued_before, 'expires_at', r.expires_at,
                              'sub', l OPERATOR(pg_catalog.->) 'sub', 'jti', l OPERATOR(pg_catalog.->) 'jti');
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
