//! Query strings, from the raw `(key, value)` pairs in request order (percent- and
//! `+`-decoding done by the caller). A list parameter is a repeated key; for a scalar
//! parameter given more than once the last value wins, as in FastAPI. Unknown keys are
//! ignored. Errors are located at `["query", <name>]` (and the item's position for
//! list parameters).

use agentd_domain::time::Millis;
use agentd_domain::{SessionId, SessionStatus};
use agentd_store::{EventPageQuery, SessionFilter};
use serde_json::Value;

use crate::errors::{FieldError, LocItem};
use crate::loc;
use crate::time::parse_time;
use crate::validate::{self, Errors};

/// The longest `/changes` long-poll a client may ask for, in seconds.
pub const MAX_WAIT_FOR_SECONDS: u64 = 60;
const MAX_EVENTS_PAGE_SIZE: u32 = 200;
const MAX_SESSIONS_PAGE_SIZE: u32 = 100;
const LIST_OWNERS: &[&str] = &[
    "me",
    "me-in-organization",
    "organization",
    "me-or-organization",
];

/// `GET /sessions/{id}/changes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangesQuery {
    /// Events the client already has; negative values are read as 0.
    pub from_index: u64,
    /// At most this many events; `None` is no limit.
    pub limit: Option<u64>,
    pub include_events: bool,
    /// How long to hold the request for a new event; 0 answers at once.
    pub wait_for_seconds: u64,
}

pub fn parse_changes_query(pairs: &[(String, String)]) -> Result<ChangesQuery, Vec<FieldError>> {
    let query = Query(pairs);
    let mut errors = Errors::default();
    let from_index = query
        .last("from_index")
        .and_then(|text| errors.take(parse_int(text, &loc!["query", "from_index"])))
        .map_or(0, |n| n.clamp(0, i128::from(u64::MAX)) as u64);
    let limit = query.last("limit").and_then(|text| {
        errors.take(int_in(
            text,
            &loc!["query", "limit"],
            0,
            i128::from(u64::MAX),
        ))
    });
    let include_events = query
        .last("include_events")
        .and_then(|text| errors.take(parse_bool(text, &loc!["query", "include_events"])))
        .unwrap_or(true);
    let wait_for_seconds = query
        .last("wait_for_seconds")
        .and_then(|text| {
            errors.take(int_in(
                text,
                &loc!["query", "wait_for_seconds"],
                0,
                i128::from(MAX_WAIT_FOR_SECONDS),
            ))
        })
        .unwrap_or(0);
    errors.into_result(ChangesQuery {
        from_index,
        limit: limit.map(|n| n as u64),
        include_events,
        wait_for_seconds: wait_for_seconds as u64,
    })
}

/// `GET /sessions/{id}/events`: `page` ≥ 1 (1), `size` 1–200 (50), `sort`
/// `timestamp` | `-timestamp` (ascending), `type` (exact event type).
pub fn parse_events_query(pairs: &[(String, String)]) -> Result<EventPageQuery, Vec<FieldError>> {
    let query = Query(pairs);
    let mut errors = Errors::default();
    let (page, size) = parse_paging(&query, 50, MAX_EVENTS_PAGE_SIZE, &mut errors);
    let descending = parse_sort(&query, "timestamp", false, &mut errors);
    let event_type = query.last("type").map(str::to_owned);
    errors.into_result(EventPageQuery {
        event_type,
        descending,
        page,
        size,
    })
}

/// `GET /sessions`: the store's filter, and the schedule the sessions must come from
/// (not a store filter: schedules live elsewhere).
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub filter: SessionFilter,
    pub schedule_id: Option<String>,
}

/// `GET /sessions`. `owner` is checked and has no effect: an organisation here has one
/// user, so every scope lists the same sessions.
pub fn parse_list_query(pairs: &[(String, String)]) -> Result<ListQuery, Vec<FieldError>> {
    let query = Query(pairs);
    let mut errors = Errors::default();
    if let Some(owner) = query.last("owner")
        && !LIST_OWNERS.contains(&owner)
    {
        errors.push(FieldError::enum_value(
            loc!["query", "owner"],
            LIST_OWNERS,
            Value::String(owner.to_owned()),
        ));
    }
    let statuses: Vec<SessionStatus> = query
        .all("status")
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = SessionStatus::parse(text);
            if parsed.is_none() {
                let names: Vec<&str> = SessionStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(FieldError::enum_value(
                    loc!["query", "status", i],
                    &names,
                    Value::String(text.to_owned()),
                ));
            }
            parsed
        })
        .collect();
    let agents: Vec<String> = query.all("agent").map(str::to_owned).collect();
    let group_id = query.last("group_id").map(str::to_owned);
    let parent_session_id = query.last("parent_session_id").and_then(|text| {
        let here = loc!["query", "parent_session_id"];
        errors.take(
            text.parse::<SessionId>()
                .map_err(|error| FieldError::uuid_parsing(here, text, &error)),
        )
    });
    let schedule_id = query.last("schedule_id").map(str::to_owned);
    let search = query.last("search").map(str::to_owned);
    let mut time = |name: &str| {
        query
            .last(name)
            .and_then(|text| errors.take(parse_datetime(text, &loc!["query", name])))
    };
    let created_before = time("created_before");
    let created_after = time("created_after");
    let finished_before = time("finished_before");
    let finished_after = time("finished_after");
    let (page, size) = parse_paging(&query, 10, MAX_SESSIONS_PAGE_SIZE, &mut errors);
    let descending = parse_sort(&query, "created_at", true, &mut errors);
    errors.into_result(ListQuery {
        filter: SessionFilter {
            statuses,
            agents,
            group_id,
            parent_session_id,
            search,
            created_before,
            created_after,
            finished_before,
            finished_after,
            descending,
            page,
            size,
        },
        schedule_id,
    })
}

/// `page` ≥ 1 (default 1) and `size` in `1..=max_size` (default `default_size`).
fn parse_paging(
    query: &Query<'_>,
    default_size: u32,
    max_size: u32,
    errors: &mut Errors,
) -> (u32, u32) {
    let page = query
        .last("page")
        .and_then(|text| {
            errors.take(int_in(
                text,
                &loc!["query", "page"],
                1,
                i128::from(u32::MAX),
            ))
        })
        .map_or(1, |n| n as u32);
    let size = query
        .last("size")
        .and_then(|text| {
            errors.take(int_in(
                text,
                &loc!["query", "size"],
                1,
                i128::from(max_size),
            ))
        })
        .map_or(default_size, |n| n as u32);
    (page, size)
}

/// `sort`, repeatable: each value is `field` or `-field`; the first decides the order.
/// Returns whether the order is descending.
fn parse_sort(
    query: &Query<'_>,
    field: &str,
    default_descending: bool,
    errors: &mut Errors,
) -> bool {
    let descending_name = format!("-{field}");
    let allowed = [field, descending_name.as_str()];
    let mut order = None;
    for (i, value) in query.all("sort").enumerate() {
        if !allowed.contains(&value) {
            errors.push(FieldError::enum_value(
                loc!["query", "sort", i],
                &allowed,
                Value::String(value.to_owned()),
            ));
        } else if order.is_none() {
            order = Some(value.starts_with('-'));
        }
    }
    order.unwrap_or(default_descending)
}

struct Query<'a>(&'a [(String, String)]);

impl<'a> Query<'a> {
    fn all(&self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn last(&self, key: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An integer from a query string (surrounding whitespace allowed, as in pydantic).
fn parse_int(text: &str, here: &[LocItem]) -> Result<i128, FieldError> {
    text.trim().parse::<i128>().map_err(|_| {
        FieldError::new(
            here.to_vec(),
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            Some(Value::String(text.to_owned())),
        )
    })
}

fn int_in(text: &str, here: &[LocItem], min: i128, max: i128) -> Result<i128, FieldError> {
    let n = parse_int(text, here)?;
    validate::check_range(n, here, min, max, || Value::String(text.to_owned()))
}

/// The strings pydantic reads as booleans.
fn parse_bool(text: &str, here: &[LocItem]) -> Result<bool, FieldError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" | "t" => Ok(true),
        "false" | "0" | "no" | "n" | "off" | "f" => Ok(false),
        _ => Err(FieldError::new(
            here.to_vec(),
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
            Some(Value::String(text.to_owned())),
        )),
    }
}

fn parse_datetime(text: &str, here: &[LocItem]) -> Result<Millis, FieldError> {
    parse_time(text).ok_or_else(|| {
        FieldError::new(
            here.to_vec(),
            "datetime_parsing",
            "Input should be a valid datetime: RFC 3339 with an offset, or unix epoch seconds",
            Some(Value::String(text.to_owned())),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error_locs(errors: &[FieldError]) -> Vec<(Value, String)> {
        errors
            .iter()
            .map(|e| (json!(e.loc), e.kind.clone()))
            .collect()
    }

    #[test]
    fn changes_query_defaults() {
        assert_eq!(
            parse_changes_query(&[]).unwrap(),
            ChangesQuery {
                from_index: 0,
                limit: None,
                include_events: true,
                wait_for_seconds: 0
            }
        );
    }

    #[test]
    fn changes_query_reads_what_the_sdk_sends() {
        let q = parse_changes_query(&pairs(&[
            ("from_index", "4"),
            ("include_events", "true"),
            ("wait_for_seconds", "20"),
            ("limit", "10"),
        ]))
        .unwrap();
        assert_eq!(
            q,
            ChangesQuery {
                from_index: 4,
                limit: Some(10),
                include_events: true,
                wait_for_seconds: 20
            }
        );
        for (text, want) in [("false", false), ("0", false), ("1", true), ("True", true)] {
            let q = parse_changes_query(&pairs(&[("include_events", text)])).unwrap();
            assert_eq!(q.include_events, want, "{text}");
        }
        let negative = parse_changes_query(&pairs(&[("from_index", "-5")])).unwrap();
        assert_eq!(negative.from_index, 0);
        let zero_limit = parse_changes_query(&pairs(&[("limit", "0")])).unwrap();
        assert_eq!(zero_limit.limit, Some(0));
        // The last of a repeated scalar wins.
        let repeated =
            parse_changes_query(&pairs(&[("from_index", "1"), ("from_index", "2")])).unwrap();
        assert_eq!(repeated.from_index, 2);
    }

    #[test]
    fn bad_changes_queries_are_located() {
        let cases = [
            (("from_index", "x"), "from_index", "int_parsing"),
            (("from_index", "1.5"), "from_index", "int_parsing"),
            (("limit", "-1"), "limit", "greater_than_equal"),
            (
                ("include_events", "maybe"),
                "include_events",
                "bool_parsing",
            ),
            (
                ("wait_for_seconds", "61"),
                "wait_for_seconds",
                "less_than_equal",
            ),
            (
                ("wait_for_seconds", "-1"),
                "wait_for_seconds",
                "greater_than_equal",
            ),
        ];
        for ((key, value), loc, kind) in cases {
            let errors = parse_changes_query(&pairs(&[(key, value)])).unwrap_err();
            assert_eq!(
                error_locs(&errors),
                [(json!(["query", loc]), kind.to_owned())],
                "{key}={value}"
            );
        }
        let all = parse_changes_query(&pairs(&[("limit", "x"), ("wait_for_seconds", "100")]))
            .unwrap_err();
        assert_eq!(all.len(), 2);
        assert!(parse_changes_query(&pairs(&[("wait_for_seconds", "60")])).is_ok());
    }

    #[test]
    fn events_query_defaults_and_bounds() {
        let q = parse_events_query(&[]).unwrap();
        assert_eq!(
            (q.page, q.size, q.descending, q.event_type),
            (1, 50, false, None)
        );
        let q = parse_events_query(&pairs(&[
            ("page", "3"),
            ("size", "200"),
            ("sort", "-timestamp"),
            ("type", "AgentEvent"),
        ]))
        .unwrap();
        assert_eq!(
            (q.page, q.size, q.descending, q.event_type.as_deref()),
            (3, 200, true, Some("AgentEvent"))
        );
        let cases = [
            (
                ("page", "0"),
                json!(["query", "page"]),
                "greater_than_equal",
            ),
            (
                ("size", "0"),
                json!(["query", "size"]),
                "greater_than_equal",
            ),
            (("size", "201"), json!(["query", "size"]), "less_than_equal"),
            (("sort", "created_at"), json!(["query", "sort", 0]), "enum"),
        ];
        for ((key, value), loc, kind) in cases {
            let errors = parse_events_query(&pairs(&[(key, value)])).unwrap_err();
            assert_eq!(
                error_locs(&errors),
                [(loc, kind.to_owned())],
                "{key}={value}"
            );
        }
    }

    #[test]
    fn list_query_defaults() {
        let q = parse_list_query(&[]).unwrap();
        assert_eq!(
            (q.filter.page, q.filter.size, q.filter.descending),
            (1, 10, true)
        );
        assert!(q.filter.statuses.is_empty() && q.filter.agents.is_empty());
        assert_eq!(q.schedule_id, None);
    }

    #[test]
    fn list_query_reads_every_filter() {
        let parent = "0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b";
        let q = parse_list_query(&pairs(&[
            ("owner", "organization"),
            ("status", "running"),
            ("status", "idle"),
            ("agent", "h/web-surfer"),
            ("agent", "mine"),
            ("group_id", "g"),
            ("parent_session_id", parent),
            ("schedule_id", "sch"),
            ("search", "weather in paris"),
            ("created_before", "2025-01-02T03:04:05Z"),
            ("created_after", "1735787045"),
            ("finished_before", "2025-01-02T04:04:05+01:00"),
            ("finished_after", "1735787045.25"),
            ("page", "2"),
            ("size", "100"),
            ("sort", "created_at"),
        ]))
        .unwrap();
        let f = &q.filter;
        assert_eq!(f.statuses, [SessionStatus::Running, SessionStatus::Idle]);
        assert_eq!(f.agents, ["h/web-surfer", "mine"]);
        assert_eq!(f.group_id.as_deref(), Some("g"));
        assert_eq!(
            f.parent_session_id.map(|id| id.to_string()).as_deref(),
            Some(parent)
        );
        assert_eq!(q.schedule_id.as_deref(), Some("sch"));
        assert_eq!(f.search.as_deref(), Some("weather in paris"));
        assert_eq!(f.created_before, Some(1_735_787_045_000));
        assert_eq!(f.created_after, Some(1_735_787_045_000));
        assert_eq!(f.finished_before, Some(1_735_787_045_000));
        assert_eq!(f.finished_after, Some(1_735_787_045_250));
        assert_eq!((f.page, f.size, f.descending), (2, 100, false));
    }

    #[test]
    fn bad_list_queries_are_located() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Value, &'a str);
        let cases: &[Case] = &[
            (&[("owner", "everyone")], json!(["query", "owner"]), "enum"),
            (
                &[("status", "running"), ("status", "done")],
                json!(["query", "status", 1]),
                "enum",
            ),
            (
                &[("parent_session_id", "nope")],
                json!(["query", "parent_session_id"]),
                "uuid_parsing",
            ),
            (
                &[("created_before", "yesterday")],
                json!(["query", "created_before"]),
                "datetime_parsing",
            ),
            (
                &[("finished_after", "")],
                json!(["query", "finished_after"]),
                "datetime_parsing",
            ),
            (
                &[("page", "0")],
                json!(["query", "page"]),
                "greater_than_equal",
            ),
            (
                &[("size", "101")],
                json!(["query", "size"]),
                "less_than_equal",
            ),
            (&[("size", "ten")], json!(["query", "size"]), "int_parsing"),
            (
                &[("sort", "-created_at"), ("sort", "name")],
                json!(["query", "sort", 1]),
                "enum",
            ),
        ];
        for (query, loc, kind) in cases {
            let errors = parse_list_query(&pairs(query)).unwrap_err();
            assert_eq!(
                error_locs(&errors),
                [(loc.clone(), (*kind).to_owned())],
                "{query:?}"
            );
        }
    }

    #[test]
    fn every_bad_list_parameter_is_reported() {
        let errors =
            parse_list_query(&pairs(&[("status", "x"), ("size", "0"), ("sort", "y")])).unwrap_err();
        assert_eq!(errors.len(), 3);
    }
}
