//! `oidc.allow(action, resource_type, 'name', value, 'name', value, …)`: the resource as
//! name/value pairs of a `VARIADIC "any"` call.
//!
//! This is the fast way to hand a row's attributes to the rule engine: the values arrive as
//! plain arguments, nothing is built per row (a `jsonb_build_object(…)` costs more than the
//! rest of the decision), and only the attributes a condition reads are converted. The
//! names' positions are worked out once per call site and kept in `fn_extra`.

use crate::jsonb::container_val;
use crate::policy;
use oidc_authz_core::rules::eval::{strings_membership, EvalError, Resource};
use oidc_authz_core::rules::residual::Tri;
use oidc_authz_core::rules::value::Val;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{FromDatum, PgSqlErrorCode};
use std::cell::RefCell;
use std::ffi::CStr;
use std::rc::Rc;

/// Name → argument position and how to convert it, per call site; and, where the action
/// and resource type are constants, what decisions there share within a statement.
struct Layout {
    attrs: Vec<(Rc<str>, usize, Kind)>,
    site: Option<RefCell<Option<policy::Prepared>>>,
}

/// How a datum becomes a rule value, decided once per call site from its type, so that no
/// catalog lookup happens per row.
#[derive(Clone, Copy)]
enum Kind {
    Scalar(Scalar),
    /// A one-dimensional array: element type, its storage, and how to convert an element.
    Array {
        element: pg_sys::Oid,
        len: i16,
        byval: bool,
        align: std::ffi::c_char,
        of: Scalar,
    },
}

#[derive(Clone, Copy)]
enum Scalar {
    Text,
    Cstring,
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Timestamp,
    Jsonb,
    /// Any other type, through its output function.
    Output(pg_sys::Oid),
}

impl Scalar {
    unsafe fn of(typ: pg_sys::Oid) -> Scalar {
        match typ {
            // (`name` is no varlena: it goes through its output function, as other types.)
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Scalar::Text,
            pg_sys::UNKNOWNOID => Scalar::Cstring,
            pg_sys::BOOLOID => Scalar::Bool,
            pg_sys::INT2OID => Scalar::Int2,
            pg_sys::INT4OID => Scalar::Int4,
            pg_sys::INT8OID => Scalar::Int8,
            pg_sys::FLOAT4OID => Scalar::Float4,
            pg_sys::FLOAT8OID => Scalar::Float8,
            pg_sys::NUMERICOID => Scalar::Numeric,
            pg_sys::TIMESTAMPTZOID | pg_sys::TIMESTAMPOID => Scalar::Timestamp,
            pg_sys::JSONBOID => Scalar::Jsonb,
            // SAFETY: a catalog lookup for a valid type oid.
            other => Scalar::Output(unsafe { output_function(other) }),
        }
    }
}

impl Kind {
    unsafe fn of(typ: pg_sys::Oid) -> Kind {
        // SAFETY: catalog lookups for a valid type oid.
        unsafe {
            let element = pg_sys::get_element_type(typ);
            if element == pg_sys::InvalidOid {
                return Kind::Scalar(Scalar::of(typ));
            }
            let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
            pg_sys::get_typlenbyvalalign(element, &mut len, &mut byval, &mut align);
            Kind::Array {
                element,
                len,
                byval,
                align,
                of: Scalar::of(element),
            }
        }
    }
}

unsafe fn output_function(typ: pg_sys::Oid) -> pg_sys::Oid {
    let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
    // SAFETY: a catalog lookup for a valid type oid.
    unsafe { pg_sys::getTypeOutputInfo(typ, &mut out, &mut varlena) };
    out
}

// The SQL declaration; the C symbols below implement it.
pgrx::extension_sql!(
    r#"
-- Two declarations, one and more pairs, so that a three-argument call always means the
-- jsonb form (an untyped literal '{...}' stays unambiguous).
CREATE FUNCTION oidc.allow(action text, resource_type text, name text, value "any")
RETURNS boolean
STABLE PARALLEL SAFE SUPPORT oidc._allow_support
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allow_attributes';
CREATE FUNCTION oidc.allow(action text, resource_type text, name text, value "any",
                           VARIADIC more_attributes "any")
RETURNS boolean
STABLE PARALLEL SAFE SUPPORT oidc._allow_support
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allow_attributes';
-- One rule's condition per row, where a residual cannot translate it (src/residual): true
-- when it holds as `want` says ('true': the condition is true; 'not false': true or an error).
CREATE FUNCTION oidc._rule(key text, want text, name text, value "any")
RETURNS boolean
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_rule_attributes';
CREATE FUNCTION oidc._rule(key text, want text, name text, value "any",
                           VARIADIC more_attributes "any")
RETURNS boolean
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_rule_attributes';
-- The actions the current principal may do on a resource (src/attrs.rs).
CREATE FUNCTION oidc.allowed_actions(resource_type text, name text, value "any")
RETURNS text[]
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allowed_actions_attributes';
CREATE FUNCTION oidc.allowed_actions(resource_type text, name text, value "any",
                                     VARIADIC more_attributes "any")
RETURNS text[]
STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'oidc_allowed_actions_attributes';
COMMENT ON FUNCTION oidc.allow(text, text, text, "any") IS
    'The decision for the current principal; the resource given as name/value pairs';
COMMENT ON FUNCTION oidc.allow(text, text, text, "any", "any") IS
    'The decision for the current principal; the resource given as name/value pairs';
"#,
    name = "allow_attributes",
    requires = ["residual_helpers"],
);

#[no_mangle]
pub extern "C" fn pg_finfo_oidc_allow_attributes() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// # Safety
/// Called by Postgres' function manager with a valid `fcinfo` for the declaration above.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn oidc_allow_attributes(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is valid for this call; arguments are read per the declared signature.
    unsafe {
        // Not STRICT, on purpose: a NULL action or resource type denies (fails closed).
        let Some(args) = leading_args(fcinfo) else {
            return pg_sys::Datum::from(false);
        };
        let flinfo = (*fcinfo).flinfo;
        if pg_sys::get_fn_expr_variadic(flinfo) {
            attrs_error("pass the resource as name/value pairs, not as a VARIADIC array");
        }
        let request = || {
            (
                <&str>::from_datum(args[0].value, false).unwrap_or(""),
                <&str>::from_datum(args[1].value, false).unwrap_or(""),
            )
        };
        let layout = layout(flinfo, args);
        let resource = Attributes {
            args,
            layout: &layout,
        };
        let allowed = match &layout.site {
            Some(site) => policy::allow_at(site, request, &resource),
            None => {
                let (action, resource_type) = request();
                policy::allow(action, resource_type, &resource)
            }
        };
        match allowed {
            Ok(b) => pg_sys::Datum::from(b),
            Err(e) => e.raise(),
        }
    }
}

#[no_mangle]
pub extern "C" fn pg_finfo_oidc_allowed_actions_attributes() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `oidc.allowed_actions(resource_type, 'name', value, …)`: the actions the current
/// principal may do on the resource (see [`policy::allowed_actions`]).
///
/// # Safety
/// Called by Postgres' function manager with a valid `fcinfo` for the declaration above.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn oidc_allowed_actions_attributes(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is valid for this call; arguments are read per the declared signature.
    unsafe {
        let nargs = usize::try_from((*fcinfo).nargs).unwrap_or(0);
        let args = (*fcinfo).args.as_slice(nargs);
        let flinfo = (*fcinfo).flinfo;
        if pg_sys::get_fn_expr_variadic(flinfo) {
            attrs_error("pass the resource as name/value pairs, not as a VARIADIC array");
        }
        // A NULL resource type allows nothing (fails closed).
        let actions = match args.first() {
            Some(rt) if !rt.isnull => {
                let resource_type = <&str>::from_datum(rt.value, false).unwrap_or("");
                let layout = layout_from(flinfo, args, 1);
                let resource = Attributes {
                    args,
                    layout: &layout,
                };
                policy::allowed_actions(resource_type, &resource).unwrap_or_else(|e| e.raise())
            }
            _ => Vec::new(),
        };
        actions
            .into_datum()
            .unwrap_or_else(|| crate::error::Error::Internal("an array of actions").raise())
    }
}

#[no_mangle]
pub extern "C" fn pg_finfo_oidc_rule_attributes() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `oidc._rule(key, want, 'name', value, …)`: one rule of a residual, decided per row by
/// the evaluator.
///
/// # Safety
/// Called by Postgres' function manager with a valid `fcinfo` for the declaration above.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn oidc_rule_attributes(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fcinfo is valid for this call; arguments are read per the declared signature.
    unsafe {
        let Some(args) = leading_args(fcinfo) else {
            return pg_sys::Datum::from(false);
        };
        let key = <&str>::from_datum(args[0].value, false).unwrap_or("");
        let not_false = <&str>::from_datum(args[1].value, false) == Some("not false");
        let layout = layout((*fcinfo).flinfo, args);
        let resource = Attributes {
            args,
            layout: &layout,
        };
        match policy::rule_value(key, &resource) {
            Ok(value) => pg_sys::Datum::from(if not_false {
                value != Tri::False
            } else {
                value == Tri::True
            }),
            Err(e) => e.raise(),
        }
    }
}

/// The call's arguments; `None` when there are fewer than two or one of the first two (action
/// and resource type, or key and want) is NULL, which the callers answer with false.
///
/// # Safety
/// `fcinfo` must be the valid call information of the running call.
unsafe fn leading_args<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<&'a [pg_sys::NullableDatum]> {
    // SAFETY: per the caller; `nargs` arguments follow the header.
    unsafe {
        let nargs = usize::try_from((*fcinfo).nargs).unwrap_or(0);
        let args = (*fcinfo).args.as_slice(nargs);
        (nargs >= 2 && !args[0].isnull && !args[1].isnull).then_some(args)
    }
}

fn attrs_error(msg: &str) -> ! {
    pgrx::ereport!(
        PgLogLevel::ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("oidc.allow: {msg}")
    );
    unreachable!("ereport(ERROR) does not return")
}

/// The call site's layout: cached in `fn_extra` when the names are constants (they are in
/// any policy), else rebuilt for this call.
unsafe fn layout(flinfo: *mut pg_sys::FmgrInfo, args: &[pg_sys::NullableDatum]) -> Rc<Layout> {
    // SAFETY: per the caller.
    unsafe { layout_from(flinfo, args, 2) }
}

/// [`layout`] for pairs from argument `first` on; a call site is kept for the decisions only
/// when the two arguments before the pairs (the action and resource type) are constants.
unsafe fn layout_from(
    flinfo: *mut pg_sys::FmgrInfo,
    args: &[pg_sys::NullableDatum],
    first: usize,
) -> Rc<Layout> {
    // SAFETY: fn_extra is ours; it holds an Rc<Layout> leaked into a pointer, released by
    // the reset callback of fn_mcxt, the context whose lifetime bounds the call site.
    unsafe {
        let cached = (*flinfo).fn_extra as *const Layout;
        if !cached.is_null() {
            Rc::increment_strong_count(cached);
            return Rc::from_raw(cached);
        }
        let mut attrs = Vec::new();
        let mut constant = true;
        let mut i = first;
        while i < args.len() {
            if i + 1 >= args.len() {
                attrs_error("attributes must come in name/value pairs");
            }
            let name_type = pg_sys::get_fn_expr_argtype(flinfo, i as i32);
            if args[i].isnull {
                attrs_error("an attribute name is NULL");
            }
            let name: String = match name_type {
                pg_sys::TEXTOID | pg_sys::VARCHAROID => <&str>::from_datum(args[i].value, false)
                    .unwrap_or("")
                    .to_string(),
                pg_sys::UNKNOWNOID => CStr::from_ptr(args[i].value.cast_mut_ptr())
                    .to_string_lossy()
                    .into_owned(),
                _ => attrs_error("attribute names must be text"),
            };
            constant &= arg_is_const(flinfo, i);
            let value_type = pg_sys::get_fn_expr_argtype(flinfo, (i + 1) as i32);
            attrs.push((Rc::from(name.as_str()), i + 1, Kind::of(value_type)));
            i += 2;
        }
        let fixed_request = first == 2 && arg_is_const(flinfo, 0) && arg_is_const(flinfo, 1);
        let layout = Rc::new(Layout {
            attrs,
            site: (constant && fixed_request).then(|| RefCell::new(None)),
        });
        if constant {
            let cb = pg_sys::MemoryContextAlloc(
                (*flinfo).fn_mcxt,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            ) as *mut pg_sys::MemoryContextCallback;
            (*cb).func = Some(release_layout);
            (*cb).arg = Rc::into_raw(layout.clone()) as *mut std::ffi::c_void;
            pg_sys::MemoryContextRegisterResetCallback((*flinfo).fn_mcxt, cb);
            (*flinfo).fn_extra = (*cb).arg;
        }
        layout
    }
}

/// Whether argument `i` of the call is a literal constant. Only those may be cached at the
/// call site: a PL/pgSQL variable is a "stable" parameter whose value changes between calls
/// of the same expression (loops, trigger invocations), so `get_fn_expr_arg_stable` is not
/// enough.
unsafe fn arg_is_const(flinfo: *mut pg_sys::FmgrInfo, i: usize) -> bool {
    // SAFETY: fn_expr, when set, is the FuncExpr node of this call; its args list is read only.
    unsafe {
        let expr = (*flinfo).fn_expr;
        if expr.is_null() || !pgrx::is_a(expr, pg_sys::NodeTag::T_FuncExpr) {
            return false;
        }
        let args = (*(expr as *mut pg_sys::FuncExpr)).args;
        if args.is_null() || i >= usize::try_from((*args).length).unwrap_or(0) {
            return false;
        }
        let arg = pg_sys::list_nth(args, i as i32) as *mut pg_sys::Node;
        !arg.is_null() && pgrx::is_a(arg, pg_sys::NodeTag::T_Const)
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn release_layout(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is the Rc leaked by `layout`, released exactly once, with fn_mcxt.
    unsafe { drop(Rc::from_raw(arg as *const Layout)) };
}

struct Attributes<'a> {
    args: &'a [pg_sys::NullableDatum],
    layout: &'a Layout,
}

impl Resource for Attributes<'_> {
    fn field(&self, name: &str) -> Option<Val> {
        let (_, i, kind) = self.layout.attrs.iter().find(|(n, _, _)| &**n == name)?;
        let arg = self.args[*i];
        if arg.isnull {
            return Some(Val::Null);
        }
        // SAFETY: the datum has the type `kind` was made for, as the call's expression says.
        Some(unsafe { datum_val(arg.value, *kind) })
    }

    fn field_equals(&self, name: &str, value: &Val) -> Option<bool> {
        let (_, i, kind) = self.layout.attrs.iter().find(|(n, _, _)| &**n == name)?;
        let arg = self.args[*i];
        if arg.isnull || !matches!(kind, Kind::Scalar(Scalar::Text)) {
            return None;
        }
        // A string equals only a string (Val::equals); compare the bytes in place.
        let Val::Str(s) = value else {
            return Some(false);
        };
        // SAFETY: a text-like datum, as the layout says.
        let bytes = unsafe { text_bytes(arg.value) };
        // Invalid UTF-8 (a SQL_ASCII database) is converted lossily by the general path.
        std::str::from_utf8(bytes).ok().map(|text| text == &**s)
    }

    fn membership(
        &self,
        name: &str,
        set: &Result<Val, EvalError>,
        all: bool,
    ) -> Option<(Result<bool, EvalError>, usize)> {
        let (_, i, kind) = self.layout.attrs.iter().find(|(n, _, _)| &**n == name)?;
        let Kind::Array {
            element,
            len,
            byval,
            align,
            of: Scalar::Text,
        } = *kind
        else {
            return None;
        };
        let arg = self.args[*i];
        if arg.isnull {
            return None;
        }
        // SAFETY: a text-like array datum, as the layout says.
        unsafe {
            let (values, nulls) = elements(arg.value, element, len, byval, align);
            // A NULL element (or invalid UTF-8) ends the shortcut: the general path compares it.
            let strings = values.iter().zip(nulls).map(|(value, null)| {
                if *null {
                    None
                } else {
                    std::str::from_utf8(text_bytes(*value)).ok()
                }
            });
            strings_membership(strings, values.len(), set, all)
        }
    }

    fn whole(&self) -> Val {
        let mut m = oidc_authz_core::rules::value::Map::new();
        for (name, _, _) in &self.layout.attrs {
            if let Some(v) = self.field(name) {
                m.insert(name.clone(), v);
            }
        }
        Val::Map(Rc::new(m))
    }
}

/// One datum as a rule value.
unsafe fn datum_val(d: pg_sys::Datum, kind: Kind) -> Val {
    // SAFETY: `d` is a non-null datum of the type `kind` was made for.
    unsafe {
        match kind {
            Kind::Scalar(of) => scalar_val(d, of),
            Kind::Array {
                element,
                len,
                byval,
                align,
                of,
            } => array_val(d, element, len, byval, align, of),
        }
    }
}

/// The bytes of a text-like datum, valid while the datum is.
///
/// # Safety
/// `d` must be a non-null text, varchar or bpchar datum (a varlena).
unsafe fn text_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: per the caller; a packed header is read as is, without a copy (a toasted value
    // is detoasted into the current memory context, which outlives the call).
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        std::slice::from_raw_parts(
            pgrx::vardata_any(v) as *const u8,
            pgrx::varsize_any_exhdr(v),
        )
    }
}

unsafe fn text_val(d: pg_sys::Datum) -> Val {
    // SAFETY: `d` is a text-like varlena.
    unsafe {
        let bytes = text_bytes(d);
        match std::str::from_utf8(bytes) {
            Ok(s) => Val::str(s),
            Err(_) => Val::str(&String::from_utf8_lossy(bytes)),
        }
    }
}

unsafe fn scalar_val(d: pg_sys::Datum, of: Scalar) -> Val {
    // SAFETY: (all arms) `d` is a non-null datum of the type `of` was made for.
    unsafe {
        match of {
            Scalar::Text => text_val(d),
            Scalar::Cstring => Val::str(&CStr::from_ptr(d.cast_mut_ptr()).to_string_lossy()),
            Scalar::Bool => Val::Bool(d.value() != 0),
            Scalar::Int2 => Val::Int(i64::from(d.value() as i16)),
            Scalar::Int4 => Val::Int(i64::from(d.value() as i32)),
            Scalar::Int8 => Val::Int(d.value() as i64),
            Scalar::Float4 => Val::Double(f64::from(f32::from_datum(d, false).unwrap_or(0.0))),
            Scalar::Float8 => Val::Double(f64::from_datum(d, false).unwrap_or(0.0)),
            Scalar::Numeric => crate::jsonb::numeric_val(d.cast_mut_ptr()),
            Scalar::Timestamp => Val::Timestamp(policy::timestamptz_ns(d.value() as i64)),
            Scalar::Jsonb => container_val(d),
            Scalar::Output(f) => output_val(d, f),
        }
    }
}

/// Any other type, by its output function: uuid, date, enums, …
unsafe fn output_val(d: pg_sys::Datum, output: pg_sys::Oid) -> Val {
    // SAFETY: `output` is the output function of `d`'s type; it returns a palloc'd C string.
    unsafe {
        let text = pg_sys::OidOutputFunctionCall(output, d);
        let v = Val::str(&CStr::from_ptr(text).to_string_lossy());
        pg_sys::pfree(text.cast());
        v
    }
}

/// An array as a list (NULL elements as null; multi-dimensional arrays flattened).
unsafe fn array_val(
    d: pg_sys::Datum,
    element: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: std::ffi::c_char,
    of: Scalar,
) -> Val {
    // SAFETY: `d` is an array of `element`.
    unsafe {
        let (values, nulls) = elements(d, element, len, byval, align);
        let items = values
            .iter()
            .zip(nulls)
            .map(|(v, null)| if *null { Val::Null } else { scalar_val(*v, of) })
            .collect();
        Val::List(Rc::new(items))
    }
}

/// An array's elements (flattened) and their null flags, palloc'd in the current memory
/// context, which outlives the row's evaluation.
///
/// # Safety
/// `d` must be a non-null array datum whose elements have type `element` with the given
/// storage.
unsafe fn elements<'a>(
    d: pg_sys::Datum,
    element: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: std::ffi::c_char,
) -> (&'a [pg_sys::Datum], &'a [bool]) {
    // SAFETY: per the caller; deconstruct_array fills `n` entries of both outputs.
    unsafe {
        let array = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let mut values: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            array,
            element,
            i32::from(len),
            byval,
            align,
            &mut values,
            &mut nulls,
            &mut n,
        );
        let count = usize::try_from(n).unwrap_or(0);
        if count == 0 {
            return (&[], &[]);
        }
        (
            std::slice::from_raw_parts(values, count),
            std::slice::from_raw_parts(nulls, count),
        )
    }
}
