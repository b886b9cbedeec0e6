//! A web service keeping one store in its state: `GET /users/{id}` and `POST /users`, the
//! store closed on graceful shutdown (the async guide's FastAPI example, in axum).
//!
//! Run: `cargo run --example axum_app --features tokio` and try
//! `curl -XPOST localhost:3000/users -H 'content-type: application/json' -d '{"id": 1, "name": "Alice"}'`
//! then `curl localhost:3000/users/1`; Ctrl-C stops it. With `-- --demo` it binds a free port,
//! sends those requests itself, prints the answers and shuts down.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use nanasqlite::AsyncNanaSQLite;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The app state: a clone of the handle per request is cheap.
#[derive(Clone)]
struct AppState {
    db: AsyncNanaSQLite,
}

type Reply = (StatusCode, Json<Value>);

fn failure(error: &nanasqlite::Error) -> Reply {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error.to_string()})))
}

async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    match state.db.aget::<Value>(&format!("user_{id}")).await {
        Ok(Some(user)) => (StatusCode::OK, Json(user)),
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "User not found"}))),
        Err(error) => failure(&error),
    }
}

async fn create_user(State(state): State<AppState>, Json(user): Json<Value>) -> Reply {
    let id = match &user["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return (StatusCode::BAD_REQUEST, Json(json!({"error": "the user needs an \"id\""}))),
    };
    match state.db.aset(&format!("user_{id}"), &user).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({"status": "created", "id": user["id"]}))),
        Err(error) => failure(&error),
    }
}

fn app(db: AsyncNanaSQLite) -> Router {
    Router::new().route("/users/{id}", get(get_user)).route("/users", post(create_user)).with_state(AppState { db })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|arg| arg == "--demo");
    let path = std::env::temp_dir().join("nanasqlite-axum-app.db");
    let db = AsyncNanaSQLite::builder(&path).max_workers(5).read_pool_size(4).open().await?;
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
        println!("{}", request(address, "POST", "/users", r#"{"id": 1, "name": "Alice"}"#).await?);
        println!("{}", request(address, "GET", "/users/1", "").await?);
        println!("{}", request(address, "GET", "/users/2", "").await?);
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
