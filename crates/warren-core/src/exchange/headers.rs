//! Headers exchange matching.
//!
//! A headers binding's arguments are the pattern and a message's `headers` table is
//! the subject. `x-match` picks the rule: `all` (the default) needs every pattern
//! entry to match, `any` needs at least one. Pattern keys starting with `x-` are
//! broker arguments, not headers, and are ignored, unless `x-match` is
//! `all-with-x`/`any-with-x`, in which case they are matched like any other key
//! (`x-match` itself never is).
//!
//! RabbitMQ is the reference, and its rules are not all obvious from the spec. The
//! behaviour below was checked against RabbitMQ 3.10 by binding and publishing with
//! pika; the tests quote each observation.
//!
//! * A pattern value of type void matches any header with that key, whatever its
//!   value ("is the key present"); a void *header* value only matches a void
//!   pattern (through that presence rule).
//! * Top-level values are compared by value, not by type, the way Erlang's `==`
//!   compares decoded terms: integers of any width and signedness (and timestamps)
//!   are equal when numerically equal, integers equal floats of the same exact
//!   value (`1 == 1.0`, but 2^53+1 is not 2^53 as a double), `f` and `d` floats
//!   compare as doubles (`1.5f == 1.5d`, `0.1f != 0.1d`), long strings equal byte
//!   arrays with the same bytes, booleans only equal booleans, decimals equal
//!   decimals with the same scale and digits, and an empty array equals an empty
//!   table (both are the empty list in Erlang).
//! * Inside arrays and tables, types do matter (Erlang compares `{Type, Value}`
//!   pairs there): `[1 as I32]` does not match `[1 as I64]`, nested tables must
//!   have the same keys in the same order.
//! * `any` with no (non-ignored) pattern entries matches nothing; `all` with none
//!   matches everything, including a message without headers.
//! * Duplicate keys: the n-th pattern entry with a key is compared with the n-th
//!   header with that key (RabbitMQ merges the two key-sorted lists).
//! * Only a long-string `x-match` of exactly `all`, `any`, `all-with-x` or
//!   `any-with-x` is accepted at bind time; see [`validate_binding_args`].

use crate::table::{FieldTable, FieldValue};

/// The `x-match` rule of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    /// `any`/`any-with-x` rather than `all`/`all-with-x`.
    any: bool,
    /// Match `x-` keys too.
    with_x: bool,
}

impl Mode {
    /// Only a long string counts, as in RabbitMQ; anything else means `all` (a bind
    /// that went through [`validate_binding_args`] can't have anything else).
    fn of(args: &FieldTable) -> Mode {
        let (any, with_x) = match args.get("x-match") {
            Some(FieldValue::LongStr(s)) => match &s[..] {
                b"any" => (true, false),
                b"all-with-x" => (false, true),
                b"any-with-x" => (true, true),
                _ => (false, false),
            },
            _ => (false, false),
        };
        Mode { any, with_x }
    }
}

/// Does a message with `headers` match a binding with `args` (x-match all/any and
/// the `all-with-x`/`any-with-x` variants)? See the module docs for the rules.
///
/// Allocation-free, and linear scans rather than the sort-and-merge RabbitMQ does:
/// both tables are usually a handful of entries.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = Mode::of(args);
    let headers = headers.map_or(&[][..], |h| &h.0[..]);
    for (i, (key, expected)) in args.0.iter().enumerate() {
        let k = key.as_bytes();
        if k == b"x-match" || (!mode.with_x && k.starts_with(b"x-")) {
            continue;
        }
        // Pair the n-th pattern entry for this key with the n-th header for it.
        let nth = args.0[..i].iter().filter(|(pk, _)| pk == key).count();
        let actual = headers
            .iter()
            .filter(|(hk, _)| hk == key)
            .nth(nth)
            .map(|(_, v)| v);
        let ok = match actual {
            None => false,
            Some(_) if matches!(expected, FieldValue::Void) => true,
            Some(v) => erlang_eq(expected, v),
        };
        if ok && mode.any {
            return true;
        }
        if !ok && !mode.any {
            return false;
        }
    }
    // all: nothing failed. any: nothing matched (including "nothing to match").
    !mode.any
}

/// Check a headers binding's arguments the way RabbitMQ does at bind time. The
/// error is the text RabbitMQ closes the channel with (406 PRECONDITION_FAILED),
/// e.g. `Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or
/// any-with-x`.
pub fn validate_binding_args(args: &FieldTable) -> Result<(), String> {
    match args.get("x-match") {
        None => Ok(()),
        Some(FieldValue::LongStr(s))
            if matches!(&s[..], b"all" | b"any" | b"all-with-x" | b"any-with-x") =>
        {
            Ok(())
        }
        Some(FieldValue::LongStr(s)) => Err(format!(
            "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
            erlang_binary(s)
        )),
        Some(other) => Err(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            other.type_name(),
            erlang_term(other)
        )),
    }
}

/// An integer value of any width, widened so `u64` timestamps and `i64` fit.
fn int(v: &FieldValue) -> Option<i128> {
    Some(match *v {
        FieldValue::I8(x) => x.into(),
        FieldValue::U8(x) => x.into(),
        FieldValue::I16(x) => x.into(),
        FieldValue::U16(x) => x.into(),
        FieldValue::I32(x) => x.into(),
        FieldValue::U32(x) => x.into(),
        FieldValue::I64(x) => x.into(),
        FieldValue::Timestamp(x) => x.into(),
        _ => return None,
    })
}

fn float(v: &FieldValue) -> Option<f64> {
    match *v {
        FieldValue::F32(x) => Some(x.into()),
        FieldValue::F64(x) => Some(x),
        _ => None,
    }
}

/// Is the float exactly this integer? (Erlang compares mixed int/float exactly; a
/// plain `i as f64 == f` would call 2^53+1 equal to 2^53.)
fn int_eq_float(i: i128, f: f64) -> bool {
    // 2^64 bounds every integer a field can hold, and makes the cast below exact.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    f.fract() == 0.0 && f.abs() <= LIMIT && f as i128 == i
}

/// Erlang's `==` on two decoded top-level field values (see the module docs).
fn erlang_eq(a: &FieldValue, b: &FieldValue) -> bool {
    use FieldValue::*;
    if let Some(x) = int(a) {
        return match (int(b), float(b)) {
            (Some(y), _) => x == y,
            (_, Some(y)) => int_eq_float(x, y),
            _ => false,
        };
    }
    if let Some(x) = float(a) {
        return match (int(b), float(b)) {
            (Some(y), _) => int_eq_float(y, x),
            (_, Some(y)) => x == y,
            _ => false,
        };
    }
    match (a, b) {
        (LongStr(x) | Bytes(x), LongStr(y) | Bytes(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Decimal(s, x), Decimal(t, y)) => s == t && x == y,
        // Elements are `{Type, Value}` pairs in Erlang, so compare them typed.
        (Array(x), Array(y)) => x == y,
        (Table(x), Table(y)) => x == y,
        // Both are the empty list in Erlang.
        (Array(x), Table(y)) | (Table(y), Array(x)) => x.is_empty() && y.is_empty(),
        (Void, Void) => true,
        _ => false,
    }
}

/// An Erlang binary as `~p` prints it: `<<"text">>` when printable, else bytes.
fn erlang_binary(b: &[u8]) -> String {
    if b.iter().all(|c| (0x20..0x7f).contains(c)) {
        let mut s = String::from("<<\"");
        for &c in b {
            if c == b'"' || c == b'\\' {
                s.push('\\');
            }
            s.push(c as char);
        }
        s + "\">>"
    } else {
        let parts: Vec<String> = b.iter().map(|c| c.to_string()).collect();
        format!("<<{}>>", parts.join(","))
    }
}

/// A scalar value roughly as Erlang's `~p` prints it (for error texts only).
fn erlang_term(v: &FieldValue) -> String {
    if let Some(i) = int(v) {
        return i.to_string();
    }
    match v {
        FieldValue::F32(x) => format!("{x:?}"),
        FieldValue::F64(x) => format!("{x:?}"),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Decimal(s, x) => format!("{{{s},{x}}}"),
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => erlang_binary(b),
        FieldValue::Void => "undefined".into(),
        FieldValue::Array(_) | FieldValue::Table(_) => "[...]".into(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shortstr::ShortStr;
    use FieldValue::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        FieldTable(
            entries
                .iter()
                .map(|(k, v)| (ShortStr::from(*k), v.clone()))
                .collect(),
        )
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::string(v)
    }

    fn m(args: &[(&str, FieldValue)], headers: &[(&str, FieldValue)]) -> bool {
        headers_match(&table(args), Some(&table(headers)))
    }

    // Each test below is one probe against RabbitMQ 3.10: bind a queue with the
    // arguments, publish with each header table, see which messages arrived.

    #[test]
    fn integers_compare_by_value_across_widths() {
        // Bound I32 1; I64, I8, U8, U16, U32, I16 and timestamp 1 all matched.
        for v in [I64(1), I8(1), U8(1), U16(1), U32(1), I16(1), Timestamp(1)] {
            assert!(m(&[("a", I32(1))], &[("a", v.clone())]), "{v:?}");
        }
        assert!(m(&[("a", Timestamp(5))], &[("a", I64(5))]));
        assert!(!m(&[("a", I32(1))], &[("a", I32(2))]));
        assert!(m(
            &[("a", Timestamp(u64::MAX))],
            &[("a", Timestamp(u64::MAX))]
        ));
        assert!(!m(&[("a", Timestamp(u64::MAX))], &[("a", I64(-1))]));
    }

    #[test]
    fn integers_equal_floats_of_the_same_exact_value() {
        // I32 1 matched F64 1.0 and F32 1.0, not F64 1.5.
        assert!(m(&[("a", I32(1))], &[("a", F64(1.0))]));
        assert!(m(&[("a", I32(1))], &[("a", F32(1.0))]));
        assert!(!m(&[("a", I32(1))], &[("a", F64(1.5))]));
        // I64 2^53+1 matched neither F64 2^53 nor 2^53+2 (exact comparison);
        // I64 2^60 matched F64 2^60.
        let big = (1i64 << 53) + 1;
        assert!(!m(&[("a", I64(big))], &[("a", F64((1u64 << 53) as f64))]));
        assert!(!m(
            &[("a", I64(big))],
            &[("a", F64(((1u64 << 53) + 2) as f64))]
        ));
        assert!(m(
            &[("a", I64(1 << 60))],
            &[("a", F64((1u64 << 60) as f64))]
        ));
        // F64 -0.0 matched I32 0 and F64 0.0.
        assert!(m(&[("a", F64(-0.0))], &[("a", I32(0))]));
        assert!(m(&[("a", F64(-0.0))], &[("a", F64(0.0))]));
        assert!(!m(&[("a", F64(f64::NAN))], &[("a", F64(f64::NAN))]));
        assert!(!m(&[("a", I64(0))], &[("a", F64(f64::INFINITY))]));
    }

    #[test]
    fn floats_compare_as_doubles() {
        // F32 1.5 matched F64 1.5 and F32 1.5; F32 0.1 did not match F64 0.1.
        assert!(m(&[("a", F32(1.5))], &[("a", F64(1.5))]));
        assert!(m(&[("a", F32(1.5))], &[("a", F32(1.5))]));
        assert!(!m(&[("a", F32(0.1))], &[("a", F64(0.1))]));
    }

    #[test]
    fn strings_and_byte_arrays_are_both_binaries() {
        // LongStr "1" matched Bytes "1" and LongStr "1", not I32 1.
        let bytes = Bytes(bytes::Bytes::from_static(b"1"));
        assert!(m(&[("a", s("1"))], &[("a", bytes.clone())]));
        assert!(m(&[("a", bytes)], &[("a", s("1"))]));
        assert!(m(&[("a", s("1"))], &[("a", s("1"))]));
        assert!(!m(&[("a", s("1"))], &[("a", I32(1))]));
        // Empty array didn't match an empty string.
        assert!(!m(&[("a", Array(vec![]))], &[("a", s(""))]));
    }

    #[test]
    fn booleans_and_decimals_match_only_their_own_kind() {
        // Bool true matched Bool true, not I32 1 or I8 1.
        assert!(m(&[("a", Bool(true))], &[("a", Bool(true))]));
        assert!(!m(&[("a", Bool(true))], &[("a", I32(1))]));
        assert!(!m(&[("a", Bool(true))], &[("a", I8(1))]));
        assert!(!m(&[("a", Bool(true))], &[("a", Bool(false))]));
        // Decimal(1, 10) matched Decimal(1, 10), not Decimal(0, 1) nor I32 1.
        assert!(m(&[("a", Decimal(1, 10))], &[("a", Decimal(1, 10))]));
        assert!(!m(&[("a", Decimal(1, 10))], &[("a", Decimal(0, 1))]));
        assert!(!m(&[("a", Decimal(1, 10))], &[("a", I32(1))]));
    }

    #[test]
    fn nested_values_compare_with_types() {
        // [I32 1] did not match [I64 1]; {k: I32 1} did not match {k: I64 1};
        // [LongStr q] did not match [Bytes q]; [F32 1.5] did not match [F64 1.5];
        // [F64 -0.0] matched [F64 0.0]; tables in another order did not match.
        assert!(!m(
            &[("a", Array(vec![I32(1)]))],
            &[("a", Array(vec![I64(1)]))]
        ));
        assert!(m(
            &[("a", Array(vec![I32(1)]))],
            &[("a", Array(vec![I32(1)]))]
        ));
        let t = |v: FieldValue| Table(table(&[("k", v)]));
        assert!(!m(&[("a", t(I32(1)))], &[("a", t(I64(1)))]));
        assert!(m(&[("a", t(I32(1)))], &[("a", t(I32(1)))]));
        let q = Bytes(bytes::Bytes::from_static(b"q"));
        assert!(!m(&[("a", Array(vec![s("q")]))], &[("a", Array(vec![q]))]));
        assert!(!m(
            &[("a", Array(vec![F32(1.5)]))],
            &[("a", Array(vec![F64(1.5)]))]
        ));
        assert!(m(
            &[("a", Array(vec![F64(-0.0)]))],
            &[("a", Array(vec![F64(0.0)]))]
        ));
        let kj = Table(table(&[("k", I32(1)), ("j", I32(2))]));
        let jk = Table(table(&[("j", I32(2)), ("k", I32(1))]));
        assert!(!m(&[("a", kj.clone())], &[("a", jk)]));
        assert!(m(&[("a", kj.clone())], &[("a", kj)]));
        // Empty array matched empty table and empty array.
        assert!(m(
            &[("a", Array(vec![]))],
            &[("a", Table(FieldTable::new()))]
        ));
        assert!(m(
            &[("a", Table(FieldTable::new()))],
            &[("a", Array(vec![]))]
        ));
        assert!(m(&[("a", Array(vec![]))], &[("a", Array(vec![]))]));
    }

    #[test]
    fn void_pattern_checks_presence_only() {
        // Bound {a: void}: matched {a: "zz"} and {a: void}; not {}, no headers, {b: 1}.
        assert!(m(&[("a", Void)], &[("a", s("zz"))]));
        assert!(m(&[("a", Void)], &[("a", Void)]));
        assert!(!m(&[("a", Void)], &[]));
        assert!(!headers_match(&table(&[("a", Void)]), None));
        assert!(!m(&[("a", Void)], &[("b", I32(1))]));
        // Bound {a: I32 0}: did not match {a: void}.
        assert!(!m(&[("a", I32(0))], &[("a", Void)]));
        // Bound any {a: void, b: 2}: matched {a: 7}; not {b: 3}, not {}.
        let any = [("x-match", s("any")), ("a", Void), ("b", I32(2))];
        assert!(m(&any, &[("a", I32(7))]));
        assert!(!m(&any, &[("b", I32(3))]));
        assert!(!m(&any, &[]));
    }

    #[test]
    fn all_and_any() {
        // all {a:1, b:2}: not {a:1}; {a:1,b:2} yes; not {a:1,b:3}; {b:2,a:1,c:9} yes.
        let all = [("x-match", s("all")), ("a", I32(1)), ("b", I32(2))];
        assert!(!m(&all, &[("a", I32(1))]));
        assert!(m(&all, &[("a", I32(1)), ("b", I32(2))]));
        assert!(!m(&all, &[("a", I32(1)), ("b", I32(3))]));
        assert!(m(&all, &[("b", I32(2)), ("a", I32(1)), ("c", I32(9))]));
        // Default is all.
        assert!(!m(&all[1..], &[("a", I32(1))]));
        assert!(m(&all[1..], &[("a", I32(1)), ("b", I32(2))]));
        // any {a:1, b:2}: {a:1} yes, {b:2} yes, not {a:5,b:3}, not {}.
        let any = [("x-match", s("any")), ("a", I32(1)), ("b", I32(2))];
        assert!(m(&any, &[("a", I32(1))]));
        assert!(m(&any, &[("b", I32(2))]));
        assert!(!m(&any, &[("a", I32(5)), ("b", I32(3))]));
        assert!(!m(&any, &[]));
        assert!(!headers_match(&table(&any), None));
    }

    #[test]
    fn empty_patterns() {
        // {x-match: all}, {} and {x-match: all-with-x} matched {}, no headers, {a:1}.
        for args in [
            vec![("x-match", s("all"))],
            vec![],
            vec![("x-match", s("all-with-x"))],
        ] {
            assert!(m(&args, &[]));
            assert!(headers_match(&table(&args), None));
            assert!(m(&args, &[("a", I32(1))]));
        }
        // {x-match: any} and {x-match: any-with-x} matched none of those.
        for mode in ["any", "any-with-x"] {
            let args = [("x-match", s(mode))];
            assert!(!m(&args, &[]));
            assert!(!headers_match(&table(&args), None));
            assert!(!m(&args, &[("a", I32(1))]));
            // x-match itself is never compared, even with -with-x.
            assert!(!m(&args, &[("x-match", s(mode))]));
        }
    }

    #[test]
    fn x_arguments_ignored_unless_with_x() {
        // any {x-foo: 1}: matched nothing ({x-foo: 1} or {}).
        let any = [("x-match", s("any")), ("x-foo", I32(1))];
        assert!(!m(&any, &[("x-foo", I32(1))]));
        assert!(!m(&any, &[]));
        // all {x-foo: 1}: matched {x-foo: 1}, {}, {x-foo: 2}.
        let all = [("x-match", s("all")), ("x-foo", I32(1))];
        assert!(m(&all, &[("x-foo", I32(1))]));
        assert!(m(&all, &[]));
        assert!(m(&all, &[("x-foo", I32(2))]));
        // any-with-x / all-with-x {x-foo: 1}: only {x-foo: 1}.
        for mode in ["any-with-x", "all-with-x"] {
            let args = [("x-match", s(mode)), ("x-foo", I32(1))];
            assert!(m(&args, &[("x-foo", I32(1))]), "{mode}");
            assert!(!m(&args, &[]), "{mode}");
            assert!(!m(&args, &[("x-foo", I32(2))]), "{mode}");
        }
        // any-with-x {x-k: void}: matched {x-k: 1}, not {}.
        let void = [("x-match", s("any-with-x")), ("x-k", Void)];
        assert!(m(&void, &[("x-k", I32(1))]));
        assert!(!m(&void, &[]));
    }

    #[test]
    fn duplicate_keys_pair_up_in_order() {
        // Bound {a:1}: not [a:2, a:1]; [a:1, a:2] yes (first header counts).
        assert!(!m(&[("a", I32(1))], &[("a", I32(2)), ("a", I32(1))]));
        assert!(m(&[("a", I32(1))], &[("a", I32(1)), ("a", I32(2))]));
        // Bound [a:1, a:2]: not {a:1}, not {a:2}, [a:1,a:2] yes, not [a:2,a:1].
        let dup = [("a", I32(1)), ("a", I32(2))];
        assert!(!m(&dup, &[("a", I32(1))]));
        assert!(!m(&dup, &[("a", I32(2))]));
        assert!(m(&dup, &[("a", I32(1)), ("a", I32(2))]));
        assert!(!m(&dup, &[("a", I32(2)), ("a", I32(1))]));
        // Bound all [a: void, a: void]: not {a:1}; [a:1, a:2] yes.
        let voids = [("x-match", s("all")), ("a", Void), ("a", Void)];
        assert!(!m(&voids, &[("a", I32(1))]));
        assert!(m(&voids, &[("a", I32(1)), ("a", I32(2))]));
        // Bound [x-match: any, x-match: all, a:1, b:1]: {a:1} matched (first wins).
        let modes = [
            ("x-match", s("any")),
            ("x-match", s("all")),
            ("a", I32(1)),
            ("b", I32(1)),
        ];
        assert!(m(&modes, &[("a", I32(1))]));
    }

    #[test]
    fn x_match_must_be_a_known_long_string() {
        // RabbitMQ refused these binds with 406 and exactly these texts.
        assert_eq!(
            validate_binding_args(&table(&[("x-match", s("foo"))])),
            Err("Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x".into())
        );
        assert_eq!(
            validate_binding_args(&table(&[("x-match", s("ANY"))])),
            Err("Invalid x-match field value <<\"ANY\">>; expected all, any, all-with-x, or any-with-x".into())
        );
        assert_eq!(
            validate_binding_args(&table(&[(
                "x-match",
                Bytes(bytes::Bytes::from_static(b"any"))
            )])),
            Err("Invalid x-match field type binary (value <<\"any\">>); expected longstr".into())
        );
        assert_eq!(
            validate_binding_args(&table(&[("x-match", I32(1))])),
            Err("Invalid x-match field type signedint (value 1); expected longstr".into())
        );
        for ok in ["all", "any", "all-with-x", "any-with-x"] {
            assert_eq!(validate_binding_args(&table(&[("x-match", s(ok))])), Ok(()));
        }
        assert_eq!(validate_binding_args(&FieldTable::new()), Ok(()));
        // Unvalidated junk falls back to all rather than failing.
        assert!(m(&[("x-match", I32(1)), ("a", I32(1))], &[("a", I32(1))]));
        assert!(!m(
            &[("x-match", s("ANY")), ("a", I32(1)), ("b", I32(1))],
            &[("a", I32(1))]
        ));
    }
}
