//! List endpoints' query parameters, as RabbitMQ's management API has them:
//!
//! * `name=` filters by name, a case-insensitive substring, or with
//!   `use_regex=true` a regular expression;
//! * `sort=FIELD` (dotted paths reach into objects) and `sort_reverse=true`;
//! * `columns=a,b.c` keeps only those fields;
//! * `page=N` (from 1) with `page_size=` (default 100, at most 500) answers
//!   RabbitMQ's paged shape `{filtered_count, item_count, items, page,
//!   page_count, page_size, total_count}` instead of a plain array.
//!
//! Errors are RabbitMQ's 400s (`invalid_pagination_parameters`,
//! `page_out_of_range`, `bad_request`).

use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use std::cmp::Ordering;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

/// Parsed list parameters.
#[derive(Debug, Default, Clone)]
pub struct ListParams {
    pub name: Option<String>,
    pub use_regex: bool,
    pub sort: Option<String>,
    pub sort_reverse: bool,
    pub columns: Option<Vec<String>>,
    /// (page, page_size) when paging was asked for.
    pub page: Option<(usize, usize)>,
    regex: Option<regex::Regex>,
}

/// The decoded query parameters of a request (first occurrence wins).
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }
}

fn invalid_pagination(page: &str, size: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_pagination_parameters",
        format!(
            "Invalid pagination parameters: page number {}, page size {}",
            page, size
        ),
    )
}

impl ListParams {
    pub fn from_query(q: &Query) -> ApiResult<ListParams> {
        let mut p = ListParams {
            name: q.get("name").filter(|n| !n.is_empty()).map(str::to_string),
            use_regex: q.flag("use_regex"),
            sort: q.get("sort").filter(|s| !s.is_empty()).map(str::to_string),
            sort_reverse: q.flag("sort_reverse"),
            columns: q.get("columns").filter(|c| !c.is_empty()).map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            ..ListParams::default()
        };
        if let Some(page) = q.get("page") {
            let size_raw = q.get("page_size");
            let page_n = page.parse::<usize>().ok().filter(|n| *n >= 1);
            let size_n = match size_raw {
                None => Some(DEFAULT_PAGE_SIZE),
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n)),
            };
            match (page_n, size_n) {
                (Some(a), Some(b)) => p.page = Some((a, b)),
                _ => return Err(invalid_pagination(page, size_raw.unwrap_or("undefined"))),
            }
        }
        if let (true, Some(name)) = (p.use_regex, &p.name) {
            p.regex = Some(
                regex::RegexBuilder::new(name)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|_| ApiError::bad_request("Pagination parameters are invalid"))?,
            );
        }
        Ok(p)
    }

    fn matches(&self, item: &Value) -> bool {
        let Some(filter) = &self.name else {
            return true;
        };
        let name = item.get("name").and_then(Value::as_str).unwrap_or("");
        match &self.regex {
            Some(r) => r.is_match(name),
            None => name.to_lowercase().contains(&filter.to_lowercase()),
        }
    }

    /// As [`ListParams::apply`], on items whose JSON `build` makes, and which
    /// are in their default order (`by_name`: that order is also by name).
    /// A page without a `name=` filter, in the default order or by name,
    /// builds only the page's items: with 100,000 queues, page 1 must not
    /// cost the JSON of all of them.
    pub fn apply_with<T>(
        &self,
        mut items: Vec<T>,
        by_name: bool,
        build: impl Fn(&T) -> Value,
    ) -> ApiResult<Value> {
        let order_kept = match self.sort.as_deref() {
            None => true,
            Some("name") => by_name,
            Some(_) => false,
        };
        let Some((page, size)) = self.page.filter(|_| self.name.is_none() && order_kept) else {
            return self.apply(items.iter().map(build).collect());
        };
        if self.sort_reverse {
            items.reverse();
        }
        let total = items.len();
        let page_count = total.div_ceil(size);
        if page > page_count.max(1) {
            return Err(page_out_of_range(page, size, total));
        }
        let page_items: Vec<Value> = items
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(build)
            .collect();
        Ok(paged(
            page,
            size,
            page_count,
            total,
            total,
            self.project(page_items),
        ))
    }

    /// Filter, sort, page and project `items` (already in their default order)
    /// into the response body.
    pub fn apply(&self, items: Vec<Value>) -> ApiResult<Value> {
        let total = items.len();
        // As RabbitMQ: `name=` filters paged answers only.
        let mut items: Vec<Value> = if self.page.is_some() {
            items.into_iter().filter(|i| self.matches(i)).collect()
        } else {
            items
        };
        if let Some(sort) = &self.sort {
            items.sort_by(|a, b| compare(field(a, sort), field(b, sort)));
        }
        if self.sort_reverse {
            items.reverse();
        }
        let filtered = items.len();
        let Some((page, size)) = self.page else {
            return Ok(Value::Array(self.project(items)));
        };
        let page_count = filtered.div_ceil(size);
        if page > page_count.max(1) {
            return Err(page_out_of_range(page, size, filtered));
        }
        let page_items: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect();
        Ok(paged(
            page,
            size,
            page_count,
            filtered,
            total,
            self.project(page_items),
        ))
    }

    /// Keep only the `columns=` fields (dotted paths build nested objects).
    pub fn project(&self, items: Vec<Value>) -> Vec<Value> {
        let Some(cols) = &self.columns else {
            return items;
        };
        items.iter().map(|i| project_one(i, cols)).collect()
    }

    /// `columns=` on a single object's answer.
    pub fn project_single(&self, item: Value) -> Value {
        match &self.columns {
            Some(cols) => project_one(&item, cols),
            None => item,
        }
    }
}

fn page_out_of_range(page: usize, size: usize, len: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "page_out_of_range",
        format!(
            "Page out of range, page: {} page size: {}, len: {}",
            page, size, len
        ),
    )
}

/// RabbitMQ's paged answer.
fn paged(
    page: usize,
    size: usize,
    page_count: usize,
    filtered: usize,
    total: usize,
    items: Vec<Value>,
) -> Value {
    serde_json::json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": page_count,
        "page_size": size,
        "total_count": total,
    })
}

fn project_one(item: &Value, cols: &[String]) -> Value {
    let mut out = Map::new();
    for c in cols {
        let path: Vec<&str> = c.split('.').collect();
        let Some(v) = lookup(item, &path) else {
            continue;
        };
        insert_path(&mut out, &path, v.clone());
    }
    Value::Object(out)
}

fn lookup<'a>(item: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(item, |v, k| v.get(*k))
}

fn insert_path(out: &mut Map<String, Value>, path: &[&str], v: Value) {
    match path {
        [] => {}
        [last] => {
            out.insert((*last).to_string(), v);
        }
        [first, rest @ ..] => {
            let entry = out
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                insert_path(m, rest, v);
            }
        }
    }
}

fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    lookup(item, &parts)
}

/// Missing values first, then numbers, then strings, as RabbitMQ's
/// (Erlang term) order puts them.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Number(_)) => 1,
            Some(Value::Bool(_)) => 2,
            Some(Value::String(_)) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({"name": format!("q{}", i), "messages": 10 - i, "arguments": {"x": i}}))
            .collect()
    }

    fn params(q: &str) -> ApiResult<ListParams> {
        ListParams::from_query(&Query::parse(Some(q)))
    }

    #[test]
    fn pages_filter_sort_and_project() {
        let out = params("page=2&page_size=2&sort=messages&columns=name,arguments.x")
            .unwrap()
            .apply(items())
            .unwrap();
        assert_eq!(
            out,
            json!({"filtered_count": 5, "item_count": 2, "page": 2, "page_count": 3,
                   "page_size": 2, "total_count": 5,
                   "items": [{"name": "q3", "arguments": {"x": 3}}, {"name": "q2", "arguments": {"x": 2}}]})
        );
        let out = params("page=1&name=Q[13]&use_regex=true")
            .unwrap()
            .apply(items())
            .unwrap();
        assert_eq!(out["filtered_count"], 2);
        let out = params("page=1&name=q2&sort=name&sort_reverse=true")
            .unwrap()
            .apply(items())
            .unwrap();
        assert_eq!(out["items"].as_array().map(Vec::len), Some(1));
        // Without paging, name= is ignored (RabbitMQ).
        let out = params("name=q2").unwrap().apply(items()).unwrap();
        assert_eq!(out.as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn apply_with_builds_the_same_answer() {
        let raw: Vec<usize> = (1..=5).collect();
        let build = |i: &usize| json!({"name": format!("q{}", i), "messages": 10 - i, "arguments": {"x": i}});
        for q in [
            "page=2&page_size=2",
            "page=1&page_size=2&sort=name&sort_reverse=true",
            "page=3&page_size=2&columns=name",
            "page=1&name=q2",
            "page=1&sort=messages",
            "sort_reverse=true",
            "",
        ] {
            let p = params(q).unwrap();
            assert_eq!(
                p.apply_with(raw.clone(), true, build).unwrap(),
                p.apply(items()).unwrap(),
                "{q}"
            );
        }
        let e = params("page=9&page_size=2")
            .unwrap()
            .apply_with(raw, true, build)
            .unwrap_err();
        assert_eq!(e.reason, "Page out of range, page: 9 page size: 2, len: 5");
    }

    #[test]
    fn bad_parameters_are_rabbitmq_400s() {
        let e = params("page=0").unwrap_err();
        assert_eq!(e.error, "invalid_pagination_parameters");
        assert_eq!(
            e.reason,
            "Invalid pagination parameters: page number 0, page size undefined"
        );
        assert_eq!(
            params("page=1&page_size=1000").unwrap_err().error,
            "invalid_pagination_parameters"
        );
        assert_eq!(
            params("page=x").unwrap_err().error,
            "invalid_pagination_parameters"
        );
        let e = params("page=9&page_size=2")
            .unwrap()
            .apply(items())
            .unwrap_err();
        assert_eq!(e.reason, "Page out of range, page: 9 page size: 2, len: 5");
        assert_eq!(
            params("name=(&use_regex=true").unwrap_err().error,
            "bad_request"
        );
        // An empty list has page 1.
        assert!(params("page=1").unwrap().apply(vec![]).is_ok());
    }

    #[test]
    fn hostile_queries_do_not_panic() {
        for q in [
            "%",
            "page=%ff",
            "columns=....",
            "sort=.",
            "name=%00&use_regex=true",
            "page=99999999999999999999999",
            "&&=&=",
        ] {
            if let Ok(p) = params(q) {
                let _ = p.apply(items());
            }
        }
    }
}
