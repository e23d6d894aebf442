//! Headers exchange matching (placeholder; to be completed with full x-match semantics).

use crate::table::FieldTable;

/// Does a message with `headers` match a binding with `args` (x-match all/any and the
/// `all-with-x`/`any-with-x` variants)?
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let empty = FieldTable::new();
    let headers = headers.unwrap_or(&empty);
    let mode = args
        .get("x-match")
        .and_then(|v| v.as_bytes())
        .unwrap_or(b"all");
    let any = mode.starts_with(b"any");
    let with_x = mode.ends_with(b"-with-x");
    let mut matched_any = false;
    for (k, v) in args.iter() {
        if !with_x && k.as_bytes().starts_with(b"x-") {
            continue;
        }
        if k.as_bytes() == b"x-match" {
            continue;
        }
        let ok = match headers.0.iter().find(|(hk, _)| hk == k) {
            None => false,
            Some((_, hv)) => matches!(v, crate::table::FieldValue::Void) || hv == v,
        };
        if any && ok {
            return true;
        }
        if !any && !ok {
            return false;
        }
        matched_any |= ok;
    }
    !any || matched_any
}
