//! `jsonb` arguments read in place. pgrx's `JsonB` prints the value to text and parses it
//! back; a policy passes a `jsonb_build_object(…)` per row, so the rule engine reads only
//! the members a condition touches, straight from the binary container.

use oidc_authz_core::rules::eval::{strings_membership, EvalError, Resource};
use oidc_authz_core::rules::value::{Map, Val};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::FromDatum;
use std::ffi::CStr;
use std::rc::Rc;

/// A detoasted `jsonb` argument, valid for the duration of the function call.
pub struct RawJsonb(*mut pg_sys::Jsonb);

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: the caller passes a jsonb datum; detoasting yields a 4-byte-header varlena
        // (a copy in the current memory context when it was toasted or short).
        let detoasted = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) };
        Some(RawJsonb(detoasted.cast()))
    }
}

// SAFETY: as pgrx's own `JsonB`: unboxed through `FromDatum` from a jsonb argument.
unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        // SAFETY: a strict function's argument is not null; a jsonb datum by the SQL signature.
        match unsafe { arg.unbox_arg_using_from_datum() } {
            Some(v) => v,
            None => RawJsonb(std::ptr::null_mut()),
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: a jsonb datum by the SQL signature.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the type is passed as Postgres' own jsonb (a varlena datum), as declared.
unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = "jsonb";
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl RawJsonb {
    fn root(&self) -> *mut pg_sys::JsonbContainer {
        // SAFETY: self.0 points to a detoasted Jsonb; `root` is its first field after the header.
        unsafe { &raw mut (*self.0).root }
    }

    fn is_object(&self) -> bool {
        if self.0.is_null() {
            return false;
        }
        // SAFETY: reading the container header of a valid jsonb.
        let header = unsafe { (*self.root()).header };
        header & pg_sys::JB_FOBJECT != 0
    }

    /// The whole value (objects, arrays, scalars).
    pub fn to_val(&self) -> Val {
        if self.0.is_null() {
            return Val::Null;
        }
        // SAFETY: a valid container for the duration of the call.
        unsafe { container_to_val(self.root()) }
    }
}

impl RawJsonb {
    /// Runs `f` on the member `name` of the top-level object, read in place.
    fn with_member<R>(&self, name: &str, f: impl FnOnce(&pg_sys::JsonbValue) -> R) -> Option<R> {
        if !self.is_object() {
            return None;
        }
        let len = i32::try_from(name.len()).ok()?;
        // SAFETY: the container is valid for the call; the key is passed with its length; the
        // returned JsonbValue (palloc'd) points into the container and is used before freeing.
        unsafe {
            let found = pg_sys::getKeyJsonValueFromContainer(
                self.root(),
                name.as_ptr().cast(),
                len,
                std::ptr::null_mut(),
            );
            if found.is_null() {
                return None;
            }
            let out = f(&*found);
            pg_sys::pfree(found.cast());
            Some(out)
        }
    }
}

/// The text of a `jbvString`, in place; `None` for other kinds or invalid UTF-8.
///
/// # Safety
/// `v` must be a valid JsonbValue whose string points into a container that outlives `'c`
/// (the text is read in place, not from `v`).
unsafe fn string_of<'c>(v: &pg_sys::JsonbValue) -> Option<&'c str> {
    if v.type_ != pg_sys::jbvType::jbvString {
        return None;
    }
    // SAFETY: per the caller; the union member read is the one `type_` names.
    unsafe {
        let s = v.val.string;
        std::str::from_utf8(std::slice::from_raw_parts(
            s.val.cast::<u8>(),
            s.len as usize,
        ))
        .ok()
    }
}

impl Resource for RawJsonb {
    fn field(&self, name: &str) -> Option<Val> {
        // SAFETY: the value is converted while its container is alive.
        self.with_member(name, |v| unsafe { scalar_or_container(v) })
    }

    fn field_equals(&self, name: &str, value: &Val) -> Option<bool> {
        // Only a string member is compared in place (a string equals only a string).
        self.with_member(name, |v| {
            // SAFETY: read while the container is alive.
            let text = unsafe { string_of(v) }?;
            Some(matches!(value, Val::Str(s) if &**s == text))
        })
        .flatten()
    }

    fn membership(
        &self,
        name: &str,
        set: &Result<Val, EvalError>,
        all: bool,
    ) -> Option<(Result<bool, EvalError>, usize)> {
        self.with_member(name, |v| {
            if v.type_ != pg_sys::jbvType::jbvBinary {
                return None;
            }
            // SAFETY: a nested container of the live jsonb; the iterator walks it without
            // descending (skipNested), and each element's string is read at once.
            unsafe {
                let container = v.val.binary.data;
                if (*container).header & pg_sys::JB_FARRAY == 0
                    || (*container).header & pg_sys::JB_FSCALAR != 0
                {
                    return None;
                }
                // JsonContainerSize: the element count is in the header's low bits.
                let count = ((*container).header & 0x0FFF_FFFF) as usize;
                let mut it = pg_sys::JsonbIteratorInit(container);
                let mut elem: pg_sys::JsonbValue = std::mem::zeroed();
                // Elements, top level only (skipNested); a non-string one reads as None.
                let strings = std::iter::from_fn(|| loop {
                    match pg_sys::JsonbIteratorNext(&mut it, &mut elem, true) {
                        pg_sys::JsonbIteratorToken::WJB_DONE => return None,
                        pg_sys::JsonbIteratorToken::WJB_ELEM => return Some(string_of(&elem)),
                        _ => {}
                    }
                });
                strings_membership(strings, count, set, all)
            }
        })
        .flatten()
    }

    fn whole(&self) -> Val {
        self.to_val()
    }
}

/// Converts a scalar `JsonbValue`, or a nested container (`jbvBinary`) in full.
unsafe fn scalar_or_container(v: &pg_sys::JsonbValue) -> Val {
    // SAFETY: (all arms) the union member read is the one `type_` names.
    unsafe {
        match v.type_ {
            pg_sys::jbvType::jbvNull => Val::Null,
            pg_sys::jbvType::jbvBool => Val::Bool(v.val.boolean),
            pg_sys::jbvType::jbvString => {
                let s = v.val.string;
                let bytes = std::slice::from_raw_parts(s.val.cast::<u8>(), s.len as usize);
                Val::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()))
            }
            pg_sys::jbvType::jbvNumeric => numeric(v.val.numeric),
            pg_sys::jbvType::jbvBinary => container_to_val(v.val.binary.data),
            _ => Val::Null,
        }
    }
}

/// A `jsonb` datum (any detoasting state) as a rule value.
///
/// # Safety
/// `d` must be a non-null jsonb datum.
pub unsafe fn container_val(d: pg_sys::Datum) -> Val {
    // SAFETY: per the caller; detoasting gives a 4-byte-header Jsonb.
    unsafe {
        let j = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::Jsonb;
        container_to_val(&raw mut (*j).root)
    }
}

/// A numeric as a rule value (see `numeric`).
///
/// # Safety
/// `n` must point to a valid Numeric.
pub unsafe fn numeric_val(n: pg_sys::Numeric) -> Val {
    // SAFETY: per the caller.
    unsafe { numeric(n) }
}

/// A JSON number as CEL sees it from JSON: an `int` when integral and in range, else `double`.
unsafe fn numeric(n: pg_sys::Numeric) -> Val {
    // SAFETY: a numeric may sit in a jsonb container or a tuple with a short varlena header;
    // detoasting gives the 4-byte header numeric_normalize reads, which returns a palloc'd
    // C string.
    unsafe {
        let n = pg_sys::pg_detoast_datum(n.cast()) as pg_sys::Numeric;
        let text = pg_sys::numeric_normalize(n);
        let out = match CStr::from_ptr(text).to_str() {
            Ok(s) => s
                .parse::<i64>()
                .map(Val::Int)
                .or_else(|_| s.parse::<u64>().map(Val::Uint))
                .unwrap_or_else(|_| Val::Double(s.parse::<f64>().unwrap_or(f64::NAN))),
            Err(_) => Val::Null,
        };
        pg_sys::pfree(text.cast());
        out
    }
}

/// Walks a container with the jsonb iterator, building lists and maps.
unsafe fn container_to_val(container: *mut pg_sys::JsonbContainer) -> Val {
    use pg_sys::JsonbIteratorToken::*;
    enum Frame {
        List(Vec<Val>),
        Map(Map, Option<Rc<str>>),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut result = Val::Null;
    // SAFETY: the iterator walks a valid container; each JsonbValue is read per its token.
    unsafe {
        let mut it = pg_sys::JsonbIteratorInit(container);
        let mut v: pg_sys::JsonbValue = std::mem::zeroed();
        loop {
            let token = pg_sys::JsonbIteratorNext(&mut it, &mut v, false);
            let finished = match token {
                WJB_DONE => break,
                WJB_BEGIN_ARRAY => {
                    stack.push(Frame::List(Vec::new()));
                    None
                }
                WJB_BEGIN_OBJECT => {
                    stack.push(Frame::Map(Map::new(), None));
                    None
                }
                WJB_KEY => {
                    if let Some(Frame::Map(_, key)) = stack.last_mut() {
                        if let Val::Str(k) = scalar_or_container(&v) {
                            *key = Some(k);
                        }
                    }
                    None
                }
                WJB_VALUE | WJB_ELEM => Some(scalar_or_container(&v)),
                WJB_END_ARRAY | WJB_END_OBJECT => match stack.pop() {
                    Some(Frame::List(items)) => Some(Val::List(Rc::new(items))),
                    Some(Frame::Map(m, _)) => Some(Val::Map(Rc::new(m))),
                    None => None,
                },
                _ => None,
            };
            if let Some(value) = finished {
                match stack.last_mut() {
                    // A raw scalar is wrapped in a one-element array by jsonb.
                    None => result = value,
                    Some(Frame::List(items)) => items.push(value),
                    Some(Frame::Map(m, key)) => {
                        if let Some(k) = key.take() {
                            m.insert(k, value);
                        }
                    }
                }
            }
        }
    }
    // jsonb stores a top-level scalar as a one-element "raw scalar" array.
    // SAFETY: reading the header of the valid container.
    let raw_scalar = unsafe { (*container).header } & pg_sys::JB_FSCALAR != 0;
    match (&result, raw_scalar) {
        (Val::List(items), true) if items.len() == 1 => items[0].clone(),
        _ => result,
    }
}
