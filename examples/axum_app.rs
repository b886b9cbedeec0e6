//! A web service keeping one store in its state (the async guide's FastAPI example, in axum):
//! users in a SQL table with a unique email, a visit counter in the key/value table, handlers
//! returning `nanasqlite::Result<Json<T>>` (feature `axum`: a duplicate email answers 409, a bad
//! request 400, a busy store 503), and the store closed on graceful shutdown.
//!
//! Run: `cargo run --example axum_app --features tokio,axum` and try
//! `curl -XPOST localhost:3000/users -H 'content-type: application/json' -d '{"name": "Alice", "email": "a@example.com", "tags": ["admin"]}'`
//! then `curl localhost:3000/users/1` and `curl localhost:3000/users`; Ctrl-C stops it. With
//! `-- --demo` it binds a free port, sends such requests itself, prints the answers and stops.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use nanasqlite::{AsyncNanaSQLite, Error, Query, Row, params};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A user as clients send it and as it is stored: `tags` goes into a JSON text column and
/// reads back as a `Vec`.
#[derive(Debug, Deserialize, Serialize)]
struct NewUser {
    name: String,
    email: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct User {
    id: i64,
    name: String,
    email: String,
    tags: Vec<String>,
}

async fn create_user(
    State(db): State<AsyncNanaSQLite>,
    Json(user): Json<NewUser>,
) -> nanasqlite::Result<(StatusCode, Json<User>)> {
    if !user.email.contains('@') {
        return Err(Error::Validation { message: format!("{:?} is not an email address", user.email) });
    }
    let id = db.sql_insert("users", &user).await?; // a duplicate email: 409 Conflict
    Ok((StatusCode::CREATED, Json(User { id, name: user.name, email: user.email, tags: user.tags })))
}

async fn get_user(State(db): State<AsyncNanaSQLite>, Path(id): Path<i64>) -> nanasqlite::Result<Json<Option<User>>> {
    let visits: i64 = db.increment(&format!("visits:{id}"), 1, None).await?;
    tracing::info!(id, visits, "user read");
    let users: Vec<User> = db.query_as(Query::table("users").filter("id = ?", params![id])).await?;
    Ok(Json(users.into_iter().next()))
}

/// Rows serialise as JSON objects as they are.
async fn list_users(State(db): State<AsyncNanaSQLite>) -> nanasqlite::Result<Json<Vec<Row>>> {
    Ok(Json(db.query(Query::table("users").columns(["id", "name", "email"]).order_by("id")).await?))
}

fn app(db: AsyncNanaSQLite) -> Router {
    Router::new().route("/users", post(create_user).get(list_users)).route("/users/{id}", get(get_user)).with_state(db)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|arg| arg == "--demo");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("axum-app.db");
    let db = AsyncNanaSQLite::open(&path).await?;
    db.create_table(
        "users",
        &[("id", "INTEGER PRIMARY KEY"), ("name", "TEXT NOT NULL"), ("email", "TEXT UNIQUE"), ("tags", "TEXT")],
    )
    .await?;
    let listener = TcpListener::bind(if demo { "127.0.0.1:0" } else { "127.0.0.1:3000" }).await?;
    let address = listener.local_addr()?;
    println!("listening on http://{address} (database {})", path.display());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app(db.clone()))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .into_future(),
    );
    if demo {
        let alice = r#"{"name": "Alice", "email": "alice@example.com", "tags": ["admin", "ops"]}"#;
        let answers = [
            request(address, "POST", "/users", alice).await?,
            request(address, "POST", "/users", alice).await?,
            request(address, "POST", "/users", r#"{"name": "Bob", "email": "nope"}"#).await?,
            request(address, "GET", "/users/1", "").await?,
            request(address, "GET", "/users", "").await?,
        ];
        for answer in &answers {
            println!("{answer}");
        }
        let statuses: Vec<&str> = answers.iter().map(|a| a.split(' ').nth(4).unwrap_or_default()).collect();
        assert_eq!(statuses, ["201", "409", "400", "200", "200"], "{answers:#?}");
        let _ = stop.send(());
    }
    server.await??;
    db.close().await?; // after the last request: everything acknowledged is committed
    println!("closed");
    Ok(())
}

/// A minimal HTTP/1.1 client for the demo: the status line and the body.
async fn request(address: std::net::SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(format!("{method} {path} -> {status}: {body}"))
}
