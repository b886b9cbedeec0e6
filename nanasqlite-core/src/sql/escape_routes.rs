//! The two fences around SQL fragments, each tested alone: fragments generated from SQLite's
//! grammar along every known route out of a query's table (subqueries, `EXISTS`, `IN` a
//! subquery or a table, table-valued functions, common table expressions, compound selects,
//! quotes opened in one fragment and closed in another, comments, odd parameter forms), run
//! with the validator and the database's authorizer on and off.
//!
//! A leak is found by difference, not by a guess at what a leak looks like: each query runs on
//! two databases alike but for the content of a table it was not asked about (`secret`); if
//! its outcome differs, it read that table. With both fences off the generator finds leaks
//! (so the property below can fail); with either one on, none, and each leak found with both
//! off is stopped by the fence left on.

use crate::storage::{ConnectionOptions, SqliteStorage};

use super::{Clause, Fence, Query, SqlConnection, SqlOps, SqlPolicy, SqlValue};

/// How a table other than the query's is named.
const TABLES: [&str; 6] = ["secret", "\"secret\"", "[secret]", "`secret`", "main.secret", "main.\"secret\""];

/// Expressions that read `{t}`, each on its own (`{t}` is one of [`TABLES`]).
const READS: [&str; 9] = [
    "(SELECT s FROM {t})",
    "(SELECT count(*) FROM {t} WHERE s LIKE 'T%')",
    "EXISTS (SELECT 1 FROM {t} WHERE s LIKE 'T%')",
    "'TOPSECRET' IN (SELECT s FROM {t})",
    "'TOPSECRET' IN {t}",
    "(SELECT value FROM json_each((SELECT json_group_array(s) FROM {t})))",
    "(WITH x AS (SELECT s FROM {t}) SELECT s FROM x)",
    "(SELECT name FROM users UNION ALL SELECT s FROM {t} LIMIT 1 OFFSET 2)",
    "(SELECT s FROM users, {t} LIMIT 1)",
];

/// Ways to write the same expression: as is, lower-cased, with comments for spaces, with a
/// bound parameter in SQLite's other forms beside it.
fn spellings(expression: &str) -> Vec<String> {
    vec![
        expression.to_owned(),
        expression.to_lowercase(),
        expression.replace(' ', "/**/"),
        expression.replace(' ', "\n"),
        format!("{expression} OR ?1 IS NULL"),
        format!("{expression} OR :p IS NULL"),
        format!("{expression} OR @p IS NULL"),
    ]
}

/// One query's fragments, and the route they try.
#[derive(Clone, Debug, Default)]
struct Fragments {
    route: &'static str,
    columns: Option<String>,
    filter: Option<String>,
    order: Option<String>,
    group: Option<String>,
}

/// Every fragment the grammar above makes, in every clause, and the cross-fragment quotes.
fn generated() -> Vec<Fragments> {
    let mut all = Vec::new();
    for table in TABLES {
        for route in READS {
            for expression in spellings(&route.replace("{t}", table)) {
                let fragments = |columns: Option<String>, filter: Option<String>, order, group| Fragments {
                    route,
                    columns,
                    filter,
                    order,
                    group,
                };
                all.push(fragments(Some(format!("name, {expression}")), None, None, None));
                all.push(fragments(None, Some(format!("id = 1 OR {expression}")), None, None));
                all.push(fragments(None, Some(format!("name = {expression}")), None, None));
                // An order or a grouping shows a read only where it differs between rows.
                all.push(fragments(None, None, Some(format!("name = {expression} DESC, id")), None));
                all.push(fragments(None, None, Some(format!("(id = 2) = {expression} DESC, id")), None));
                for group in [format!("name = {expression}"), format!("(id = 2) = {expression}")] {
                    all.push(fragments(Some("count(*)".to_owned()), None, None, Some(group)));
                }
            }
        }
        // A quote opened in the column list and closed in the filter turns `FROM users WHERE`
        // into text, and the rest of the filter into the select list's end.
        // (The table's own quoted name ends a `"` opened before it, so that one cannot.)
        for (columns, filter) in [("1, '", "', s"), ("1 AS [", "], s"), ("1 AS `", "`, s"), ("1, /*", "*/ s")] {
            all.push(Fragments {
                route: "a quote across fragments",
                columns: Some(columns.to_owned()),
                filter: Some(format!("{filter} FROM {table} --")),
                ..Fragments::default()
            });
        }
    }
    all
}

/// A database with `users` (`a`, `b`) and a `secret` table holding `secrets` (told apart by
/// every route: the first is a user's name, the second starts with a `T`).
fn database(secrets: &str) -> SqliteStorage {
    let storage = SqliteStorage::open(":memory:", &ConnectionOptions::default()).unwrap();
    let setup = format!(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users (name) VALUES ('a'), ('b');
         CREATE TABLE secret (s TEXT);
         INSERT INTO secret (s) VALUES {secrets};"
    );
    storage.execute_batch(&setup).unwrap();
    storage
}

/// The secrets of the database a leak would reveal.
const TOLD: &str = "('a'), ('TOPSECRET')";

/// Which fences stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fences {
    validator: bool,
    authorizer: bool,
}

/// What a query did: its rows, or that it failed (and whether a fence refused it).
#[derive(Debug, PartialEq)]
enum Outcome {
    Rows(Vec<Vec<SqlValue>>),
    Refused,
    Failed,
}

/// The parameter markers the spellings use, one bound value each.
const MARKERS: [&str; 3] = ["?1", ":p", "@p"];

fn query_of(fragments: &Fragments, policy: &SqlPolicy) -> Query {
    let parts = [&fragments.columns, &fragments.filter, &fragments.order, &fragments.group];
    let text: String = parts.iter().filter_map(|part| part.as_deref()).collect();
    let parameters = vec![SqlValue::Null; MARKERS.iter().filter(|marker| text.contains(*marker)).count()];
    let mut query = Query::table("users").policy(policy.clone());
    if let Some(columns) = &fragments.columns {
        query = query.columns([columns.clone()]);
    }
    // Values are bound through the filter, which every query then has.
    query = query.filter(fragments.filter.clone().unwrap_or_else(|| "1 = 1".to_owned()), parameters);
    if let Some(order) = &fragments.order {
        query = query.order_by(order.clone());
    }
    if let Some(group) = &fragments.group {
        query = query.group_by(group.clone());
    }
    query
}

/// Runs `fragments` on `storage` with `fences` standing.
fn run(storage: &SqliteStorage, fragments: &Fragments, fences: Fences) -> Outcome {
    // The validator off: the policy only warns (a fragment it would refuse is used).
    let policy = SqlPolicy::default().strict(fences.validator);
    let query = query_of(fragments, &policy);
    let result = if fences.authorizer {
        SqlOps::new(storage, &policy).query(&query)
    } else {
        query.select_sql(&policy).and_then(|(sql, params)| storage.rows(&sql, &params, None, Fence::Open))
    };
    match result {
        Ok(rows) => Outcome::Rows(rows.iter().map(|row| row.values().to_vec()).collect()),
        Err(crate::Error::Validation { .. }) => Outcome::Refused,
        Err(_) => Outcome::Failed,
    }
}

/// The fragments whose outcome depends on the content of `secret`, with `fences` standing.
fn leaks(fences: Fences, all: &[Fragments]) -> Vec<usize> {
    let (told, other) = (database(TOLD), database("('nothing')"));
    (0..all.len()).filter(|&i| run(&told, &all[i], fences) != run(&other, &all[i], fences)).collect()
}

#[test]
fn the_generator_finds_leaks_when_both_fences_are_down() {
    let all = generated();
    let found = leaks(Fences { validator: false, authorizer: false }, &all);
    // Every route, and every clause, leaks without fences: the generator reaches them.
    for route in READS.into_iter().chain(["a quote across fragments"]) {
        assert!(found.iter().any(|&i| all[i].route == route), "no leak found through {route}");
    }
    let through = |clause: &dyn Fn(&Fragments) -> bool| found.iter().any(|&i| clause(&all[i]));
    assert!(through(&|f| f.columns.as_deref().is_some_and(|c| c.starts_with("name, ("))), "the column list");
    assert!(through(&|f| f.filter.as_deref().is_some_and(|c| c.starts_with("id = 1"))), "the filter");
    assert!(through(&|f| f.order.is_some()), "ORDER BY");
    assert!(through(&|f| f.group.is_some()), "GROUP BY");
    for quote in ["'", "[", "`", "/*"] {
        assert!(through(&|f| f.columns.as_deref().is_some_and(|c| c.ends_with(quote))), "a {quote} across fragments");
    }
    println!("{} of {} generated queries leak with no fence", found.len(), all.len());
}

#[test]
fn the_authorizer_alone_stops_every_leak_the_generator_finds() {
    let all = generated();
    let open = leaks(Fences { validator: false, authorizer: false }, &all);
    let fenced = leaks(Fences { validator: false, authorizer: true }, &all);
    assert!(fenced.is_empty(), "leaked past the authorizer: {:?}", fenced.iter().map(|&i| &all[i]).collect::<Vec<_>>());
    let storage = database(TOLD);
    for &i in &open {
        let outcome = run(&storage, &all[i], Fences { validator: false, authorizer: true });
        assert!(!matches!(outcome, Outcome::Rows(_)), "{:?} ran past the authorizer: {outcome:?}", all[i]);
    }
}

#[test]
fn the_validator_alone_stops_every_leak_the_generator_finds() {
    let all = generated();
    let open = leaks(Fences { validator: false, authorizer: false }, &all);
    let validated = leaks(Fences { validator: true, authorizer: false }, &all);
    assert!(
        validated.is_empty(),
        "leaked past the validator: {:?}",
        validated.iter().map(|&i| &all[i]).collect::<Vec<_>>()
    );
    let storage = database(TOLD);
    for &i in &open {
        let outcome = run(&storage, &all[i], Fences { validator: true, authorizer: false });
        assert_eq!(outcome, Outcome::Refused, "{:?} got past the validator", all[i]);
    }
}

#[test]
fn with_both_fences_nothing_leaks_and_the_validator_speaks_first() {
    let all = generated();
    assert!(leaks(Fences { validator: true, authorizer: true }, &all).is_empty());
    // Every generated fragment names another table, so the validator refuses each one itself.
    for fragments in &all {
        let policy = SqlPolicy::default();
        let refused = [
            fragments.columns.as_deref().map(|f| policy.check(f, Clause::Column)),
            fragments.filter.as_deref().map(|f| policy.check(f, Clause::Where)),
            fragments.order.as_deref().map(|f| policy.check(f, Clause::OrderBy)),
            fragments.group.as_deref().map(|f| policy.check(f, Clause::GroupBy)),
        ]
        .into_iter()
        .flatten()
        .any(|checked| checked.is_err());
        assert!(refused, "the validator accepted every part of {fragments:?}");
    }
}
