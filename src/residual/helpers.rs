//! The extension's own helper functions of residual expressions, found by identity
//! (extension membership), never by name.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;

pgrx::extension_sql!(
    r#"
-- Helpers of residual expressions (see src/residual.rs); found by identity, not by name.
CREATE FUNCTION oidc._allow_support(internal) RETURNS internal
LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'oidc_allow_support';
-- (any number of dimensions: the evaluator flattens arrays)
CREATE FUNCTION oidc._has_null(pg_catalog.text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN EXISTS (SELECT FROM pg_catalog.unnest($1) AS e(x) WHERE e.x IS NULL);
CREATE FUNCTION oidc._nonempty(pg_catalog.text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.cardinality($1) OPERATOR(pg_catalog.>) 0;
"#,
    name = "residual_helpers",
);

/// The extension's helper functions, by oid.
#[derive(Clone, Copy)]
pub(crate) struct Helpers {
    pub(super) fixed_bool: pg_sys::Oid,
    pub(super) fixed_text: pg_sys::Oid,
    pub(super) fixed_texts: pg_sys::Oid,
    pub(super) fixed_probe: pg_sys::Oid,
    pub(super) fixed_int8: pg_sys::Oid,
    pub(super) fixed_timestamptz: pg_sys::Oid,
    pub(super) fixed_timestamp: pg_sys::Oid,
    pub(super) has_null: pg_sys::Oid,
    pub(super) nonempty: pg_sys::Oid,
    /// `oidc._rule(key, want, name, value)` and its variadic form.
    pub(super) rule: pg_sys::Oid,
    pub(super) rule_variadic: pg_sys::Oid,
    /// `oidc.allow`'s pair forms (for the lint).
    pub(crate) allow: pg_sys::Oid,
    pub(crate) allow_variadic: pg_sys::Oid,
}

thread_local! {
    /// The helpers' oids per extension oid (a backend is single-threaded); an extension
    /// dropped and created again has another oid.
    static HELPERS: RefCell<Option<(pg_sys::Oid, Helpers)>> = const { RefCell::new(None) };
}

/// The helpers that are members of the extension (`pg_depend`): never whatever a name
/// resolves to.
pub(crate) fn helpers() -> Option<Helpers> {
    // SAFETY: a catalog lookup by a static name; missing_ok.
    let extension = unsafe { pg_sys::get_extension_oid(c"pg_oidc_authz".as_ptr(), true) };
    if extension == pg_sys::InvalidOid {
        return None;
    }
    if let Some(h) = HELPERS.with_borrow(|h| h.filter(|(e, _)| *e == extension).map(|(_, h)| h)) {
        return Some(h);
    }
    // (name, number of arguments: 0 = any)
    let names = [
        ("_fixed_bool", 0),
        ("_fixed_text", 0),
        ("_fixed_texts", 0),
        ("_fixed_probe", 0),
        ("_fixed_int8", 0),
        ("_fixed_timestamptz", 0),
        ("_fixed_timestamp", 0),
        ("_has_null", 0),
        ("_nonempty", 0),
        ("_rule", 4),
        ("_rule", 5),
        ("allow", 4),
        ("allow", 5),
    ];
    let mut oids = [pg_sys::InvalidOid; 13];
    Spi::connect(|client| {
        let rows = client.select(
            "select p.oid, p.proname::pg_catalog.text, p.pronargs::pg_catalog.int4 from pg_catalog.pg_depend d \
             join pg_catalog.pg_proc p on p.oid operator(pg_catalog.=) d.objid \
             where d.refclassid operator(pg_catalog.=) $1 \
             and d.refobjid operator(pg_catalog.=) $2 \
             and d.classid operator(pg_catalog.=) $3 \
             and d.deptype operator(pg_catalog.=) 'e'::pg_catalog.\"char\"",
            None,
            &[
                pg_sys::ExtensionRelationId.into(),
                extension.into(),
                pg_sys::ProcedureRelationId.into(),
            ],
        )?;
        for row in rows {
            let (Some(oid), Some(name), Some(nargs)) = (
                row.get::<pg_sys::Oid>(1)?,
                row.get::<String>(2)?,
                row.get::<i32>(3)?,
            ) else {
                continue;
            };
            if let Some(i) = names
                .iter()
                .position(|(n, k)| *n == name && (*k == 0 || *k == nargs))
            {
                oids[i] = oid;
            }
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .ok()?;
    if oids.contains(&pg_sys::InvalidOid) {
        return None;
    }
    let h = Helpers {
        fixed_bool: oids[0],
        fixed_text: oids[1],
        fixed_texts: oids[2],
        fixed_probe: oids[3],
        fixed_int8: oids[4],
        fixed_timestamptz: oids[5],
        fixed_timestamp: oids[6],
        has_null: oids[7],
        nonempty: oids[8],
        rule: oids[9],
        rule_variadic: oids[10],
        allow: oids[11],
        allow_variadic: oids[12],
    };
    HELPERS.with_borrow_mut(|c| *c = Some((extension, h)));
    Some(h)
}
