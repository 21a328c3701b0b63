//! The one place where errors become Postgres errors: SQLSTATE, message, detail, hint.

use oidc_authz_core::rules::RuleError;
use oidc_authz_core::{ConfigError, TokenError};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

pub enum Error {
    /// A present token failed verification: 28000.
    Token(TokenError),
    /// A refused configuration row: 22023.
    Config(ConfigError),
    /// `oidc.uid()` on a `sub` that is not a uuid: 22P02.
    NotUuid,
    /// A refused rule row: 22023.
    Rule(RuleError),
    /// A denied `oidc.require()`: 42501, the explanation as detail.
    Denied {
        action: String,
        resource_type: String,
        explanation: String,
    },
    /// A plan built from other rules than the current ones (a change processed during the
    /// statement): 40001, retry.
    StalePlan,
    /// A refused row of `oidc.rule_tests`: 22023.
    RuleTest(oidc_authz_core::rules::cases::RuleTestError),
    /// A commit that would make gated rule tests fail (name, what went wrong): 23514.
    RuleTestsFailed(Vec<(String, String)>),
    /// A function argument out of its domain: 22023.
    Argument(&'static str),
    /// A call only a superuser may make (what it would do): 42501.
    SuperuserOnly(&'static str),
    /// A bug: XX000.
    Internal(&'static str),
}

impl Error {
    pub fn raise(self) -> ! {
        let report = match self {
            Error::Token(e) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                format!("invalid token: {e}"),
                "pg_oidc_authz",
            )
            .set_detail(format!("failed check: {}", e.check()))
            .set_hint("select oidc.token_status() shows what was checked"),
            Error::Config(e) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid issuer configuration: {e}"),
                "pg_oidc_authz",
            ),
            Error::NotUuid => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "the token's sub is not a uuid",
                "pg_oidc_authz",
            )
            .set_hint("use oidc.sub() for providers whose subject identifiers are not uuids"),
            Error::Rule(e) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid rule: {e}"),
                "pg_oidc_authz",
            ),
            Error::Denied {
                action,
                resource_type,
                explanation,
            } => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied: `{action}` on `{resource_type}`"),
                "pg_oidc_authz",
            )
            .set_detail(explanation)
            .set_hint("oidc.explain() with the same arguments shows every rule that matched"),
            Error::StalePlan => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                "the rules changed while this statement ran",
                "pg_oidc_authz",
            )
            .set_hint("run the statement again: it is planned with the new rules"),
            Error::RuleTest(e) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid {e}"),
                "pg_oidc_authz",
            ),
            Error::RuleTestsFailed(failures) => {
                let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
                let detail: Vec<String> = failures
                    .iter()
                    .map(|(name, why)| format!("{name}: {why}"))
                    .collect();
                ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
                    format!(
                        "the transaction makes {} gated rule test(s) fail: {}",
                        failures.len(),
                        names.join(", ")
                    ),
                    "pg_oidc_authz",
                )
                .set_detail(detail.join("\n"))
                .set_hint(
                    "nothing of it is stored; select * from oidc.test_rules() shows every test",
                )
            }
            Error::Argument(what) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                what,
                "pg_oidc_authz",
            ),
            Error::SuperuserOnly(what) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied to {what}"),
                "pg_oidc_authz",
            )
            .set_detail("only a superuser may"),
            Error::Internal(what) => ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("pg_oidc_authz internal error: {what}"),
                "pg_oidc_authz",
            ),
        };
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returns control to Postgres")
    }
}

/// Unwraps or raises: `thing_inner().report()` in the `#[pg_extern]` skins.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}
