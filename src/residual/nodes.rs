//! Postgres expression nodes for residuals (built in the planner's memory context).

use pgrx::pg_sys;
use pgrx::FromDatum;
use std::ffi::CStr;

pub(super) unsafe fn list(items: Vec<*mut pg_sys::Node>) -> *mut pg_sys::List {
    let mut l: *mut pg_sys::List = std::ptr::null_mut();
    for item in items {
        // SAFETY: appending a node pointer to a (possibly empty) list.
        l = unsafe { pg_sys::lappend(l, item.cast()) };
    }
    l
}

pub(crate) unsafe fn list_nodes(l: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    if l.is_null() {
        return Vec::new();
    }
    // SAFETY: a valid pointer list.
    unsafe {
        let n = usize::try_from((*l).length).unwrap_or(0);
        (0..n)
            .map(|i| pg_sys::list_nth(l, i as i32) as *mut pg_sys::Node)
            .collect()
    }
}

/// A non-null text (or unknown) literal's value.
pub(crate) unsafe fn const_text(n: *mut pg_sys::Node) -> Option<String> {
    // SAFETY: reading a Const node.
    unsafe {
        if n.is_null() || !pgrx::is_a(n, pg_sys::NodeTag::T_Const) {
            return None;
        }
        let c = &*(n as *mut pg_sys::Const);
        if c.constisnull {
            return None;
        }
        match c.consttype {
            pg_sys::TEXTOID | pg_sys::VARCHAROID => {
                <&str>::from_datum(c.constvalue, false).map(str::to_string)
            }
            pg_sys::UNKNOWNOID => Some(
                CStr::from_ptr(c.constvalue.cast_mut_ptr())
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => None,
        }
    }
}

pub(super) unsafe fn bool_const(b: bool) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor.
    unsafe { pg_sys::makeBoolConst(b, false) }
}

pub(super) unsafe fn int_const(i: i32) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor; int4 is by value.
    unsafe {
        pg_sys::makeConst(
            pg_sys::INT4OID,
            -1,
            pg_sys::InvalidOid,
            4,
            pg_sys::Datum::from(i),
            false,
            true,
        )
        .cast()
    }
}

pub(super) unsafe fn text_const(s: &str, collation: pg_sys::Oid) -> *mut pg_sys::Node {
    // SAFETY: a palloc'd text datum in the current (planner) memory context.
    unsafe {
        let t = pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32);
        pg_sys::makeConst(
            pg_sys::TEXTOID,
            -1,
            collation,
            -1,
            pg_sys::Datum::from(t),
            false,
            false,
        )
        .cast()
    }
}

pub(super) unsafe fn null_const(typ: pg_sys::Oid, collation: pg_sys::Oid) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor.
    unsafe { pg_sys::makeNullConst(typ, -1, collation).cast() }
}

/// The value of a boolean constant node, if it is one.
pub(super) unsafe fn const_bool(n: *mut pg_sys::Node) -> Option<bool> {
    // SAFETY: reading a node's tag, and a Const's fields.
    unsafe {
        if n.is_null() || !pgrx::is_a(n, pg_sys::NodeTag::T_Const) {
            return None;
        }
        let c = &*(n as *mut pg_sys::Const);
        (c.consttype == pg_sys::BOOLOID && !c.constisnull).then(|| c.constvalue.value() != 0)
    }
}

/// `AND` of two-valued expressions, constants folded.
pub(super) unsafe fn and(items: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    // SAFETY: node construction.
    unsafe { junction(items, true) }
}

/// `OR` of two-valued expressions, constants folded.
pub(super) unsafe fn or(items: Vec<*mut pg_sys::Node>) -> *mut pg_sys::Node {
    // SAFETY: node construction.
    unsafe { junction(items, false) }
}

/// `AND` (`and`) or `OR`: a constant that decides it (false for AND, true for OR) replaces
/// it, the other constant is dropped.
unsafe fn junction(items: Vec<*mut pg_sys::Node>, and: bool) -> *mut pg_sys::Node {
    // SAFETY: plain constructors over boolean expressions.
    unsafe {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            match const_bool(item) {
                Some(b) if b == and => {}
                Some(_) => return bool_const(!and),
                None => kept.push(item),
            }
        }
        match kept.len() {
            0 => bool_const(and),
            1 => kept[0],
            _ if and => pg_sys::make_andclause(list(kept)).cast(),
            _ => pg_sys::make_orclause(list(kept)).cast(),
        }
    }
}

pub(super) unsafe fn not(item: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor.
    unsafe {
        match const_bool(item) {
            Some(b) => bool_const(!b),
            None => pg_sys::make_notclause(item.cast()).cast(),
        }
    }
}

pub(super) unsafe fn null_test(arg: *mut pg_sys::Node, is_null: bool) -> *mut pg_sys::Node {
    // SAFETY: a zeroed node of the right size, tagged, filled in.
    unsafe {
        let n = pg_sys::palloc0(std::mem::size_of::<pg_sys::NullTest>()) as *mut pg_sys::NullTest;
        (*n).xpr.type_ = pg_sys::NodeTag::T_NullTest;
        (*n).arg = arg.cast();
        (*n).nulltesttype = if is_null {
            pg_sys::NullTestType::IS_NULL
        } else {
            pg_sys::NullTestType::IS_NOT_NULL
        };
        (*n).argisrow = false;
        (*n).location = -1;
        n.cast()
    }
}

/// A text-typed view of the attribute (varchar relabelled, as an implicit cast would).
pub(super) unsafe fn as_text(expr: *mut pg_sys::Node, collation: pg_sys::Oid) -> *mut pg_sys::Node {
    // SAFETY: exprType of a valid expression; a plain constructor.
    unsafe {
        if pg_sys::exprType(expr) != pg_sys::TEXTOID {
            return pg_sys::makeRelabelType(
                expr.cast(),
                pg_sys::TEXTOID,
                -1,
                collation,
                pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
            )
            .cast();
        }
        expr
    }
}

/// `a = b` over text.
pub(super) unsafe fn text_eq(
    a: *mut pg_sys::Node,
    b: *mut pg_sys::Node,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: text = text.
    unsafe { bool_op(pg_sys::TextEqualOperator, a, b, collation) }
}

/// `a = any(array)` over text.
pub(super) unsafe fn text_any(
    a: *mut pg_sys::Node,
    array: *mut pg_sys::Node,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a zeroed node of the right size, tagged, filled in.
    unsafe {
        let n = pg_sys::palloc0(std::mem::size_of::<pg_sys::ScalarArrayOpExpr>())
            as *mut pg_sys::ScalarArrayOpExpr;
        (*n).xpr.type_ = pg_sys::NodeTag::T_ScalarArrayOpExpr;
        (*n).opno = pg_sys::Oid::from(pg_sys::TextEqualOperator);
        (*n).useOr = true;
        (*n).inputcollid = collation;
        (*n).args = list(vec![a, array]);
        (*n).location = -1;
        pg_sys::set_sa_opfuncid(n);
        n.cast()
    }
}

/// `array[element]` of text.
pub(super) unsafe fn array_of(
    element: *mut pg_sys::Node,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: node construction.
    unsafe { array_expr(vec![element], collation) }
}

pub(super) unsafe fn array_expr(
    elements: Vec<*mut pg_sys::Node>,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a zeroed node of the right size, tagged, filled in.
    unsafe {
        let n = pg_sys::palloc0(std::mem::size_of::<pg_sys::ArrayExpr>()) as *mut pg_sys::ArrayExpr;
        (*n).xpr.type_ = pg_sys::NodeTag::T_ArrayExpr;
        (*n).array_typeid = pg_sys::TEXTARRAYOID;
        (*n).array_collid = collation;
        (*n).element_typeid = pg_sys::TEXTOID;
        (*n).elements = list(elements);
        (*n).multidims = false;
        (*n).location = -1;
        n.cast()
    }
}

/// `a <op> b` for a boolean operator (`=` over text, `@>` or `&&` over text[]), with its
/// function filled in.
pub(super) unsafe fn bool_op(
    opno: u32,
    a: *mut pg_sys::Node,
    b: *mut pg_sys::Node,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor; the operator's input types are the callers' to match.
    unsafe {
        let op = pg_sys::make_opclause(
            pg_sys::Oid::from(opno),
            pg_sys::BOOLOID,
            false,
            a.cast(),
            b.cast(),
            pg_sys::InvalidOid,
            collation,
        );
        pg_sys::set_opfuncid(op.cast());
        op.cast()
    }
}

/// `(select expr)`: an uncorrelated scalar subquery, which the planner turns into an
/// initplan (evaluated once per execution, its value a parameter), as it would a
/// hand-written `(select oidc.sub())`.
pub(super) unsafe fn init_plan(expr: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: zeroed nodes of the right sizes, tagged, filled in as the parser fills a
    // `SELECT expr` without FROM.
    unsafe {
        let q = pg_sys::palloc0(std::mem::size_of::<pg_sys::Query>()) as *mut pg_sys::Query;
        (*q).type_ = pg_sys::NodeTag::T_Query;
        (*q).commandType = pg_sys::CmdType::CMD_SELECT;
        (*q).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*q).canSetTag = true;
        (*q).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), std::ptr::null_mut());
        let te = pg_sys::makeTargetEntry(expr.cast(), 1, pg_sys::pstrdup(c"v".as_ptr()), false);
        (*q).targetList = list(vec![te.cast()]);
        let s = pg_sys::palloc0(std::mem::size_of::<pg_sys::SubLink>()) as *mut pg_sys::SubLink;
        (*s).xpr.type_ = pg_sys::NodeTag::T_SubLink;
        (*s).subLinkType = pg_sys::SubLinkType::EXPR_SUBLINK;
        (*s).subselect = q.cast();
        (*s).location = -1;
        s.cast()
    }
}

/// `starts_with(text, prefix)`: byte-wise under the deterministic collations residuals use.
pub(super) unsafe fn starts_with(
    text: *mut pg_sys::Node,
    prefix: *mut pg_sys::Node,
    collation: pg_sys::Oid,
) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor of a call of the built-in function.
    unsafe {
        pg_sys::makeFuncExpr(
            pg_sys::Oid::from(pg_sys::F_STARTS_WITH),
            pg_sys::BOOLOID,
            list(vec![text, prefix]),
            pg_sys::InvalidOid,
            collation,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        )
        .cast()
    }
}

/// A constant of an 8-byte by-value type (`int8`, `timestamptz`, `timestamp`).
pub(super) unsafe fn i64_const(typ: pg_sys::Oid, v: i64) -> *mut pg_sys::Node {
    // SAFETY: a plain constructor; these types are 8 bytes and passed by value.
    unsafe {
        pg_sys::makeConst(
            typ,
            -1,
            pg_sys::InvalidOid,
            8,
            pg_sys::Datum::from(v),
            false,
            true,
        )
        .cast()
    }
}

/// The b-tree operator `left <strategy> right` of the left type's default operator
/// family (cross-type members included: `int4 <= int8`), if there is one.
pub(super) unsafe fn btree_operator(
    left: pg_sys::Oid,
    right: pg_sys::Oid,
    strategy: u32,
) -> Option<pg_sys::Oid> {
    // SAFETY: catalog lookups for valid type oids.
    unsafe {
        let opclass = pg_sys::GetDefaultOpClass(left, pg_sys::BTREE_AM_OID);
        if opclass == pg_sys::InvalidOid {
            return None;
        }
        let family = pg_sys::get_opclass_family(opclass);
        let op = pg_sys::get_opfamily_member(family, left, right, strategy as i16);
        (op != pg_sys::InvalidOid).then_some(op)
    }
}
