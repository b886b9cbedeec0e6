//! `Error` as an HTTP response (feature `axum`): handlers can return `nanasqlite::Result<T>`.

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::CONTENT_TYPE;

use crate::error::Error;

/// Answers with [`Error::status_code`] and a small JSON body, `{"error": kind, "message": …}`.
/// What goes back names the kind of error, not the store's schema: a duplicate, a missing
/// referenced key or another constraint (409) and a refused write (422) say so without the
/// field, the rule, the table or a value (the error's `Display`, which keeps them, is the program's own); a validation error
/// (400) keeps its message, which is about the request. A 500 says only "internal error" (the
/// cause is logged as a `tracing` error and stays in the error's `Display`).
///
/// ```
/// use axum::{Json, Router, extract::State, routing::get};
/// use nanasqlite_core::{NanaSQLite, Result};
///
/// async fn user(State(db): State<NanaSQLite>) -> Result<Json<Option<serde_json::Value>>> {
///     Ok(Json(db.get("user_1")?)) // an error answers 400, 409, 422, 503 or 500, as JSON
/// }
///
/// # fn app(db: NanaSQLite) -> Router {
/// Router::new().route("/user", get(user)).with_state(db)
/// # }
/// ```
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, message) = match status.as_u16() {
            400 => ("validation", self.to_string()),
            404 => ("not_found", "not found".to_owned()),
            409 if self.is_unique_violation() => ("conflict", "a value that must be unique is taken".to_owned()),
            409 if self.refusal() == Some(crate::Refusal::ForeignKey) => {
                ("conflict", "a key this write refers to is missing".to_owned())
            }
            409 => ("conflict", "a constraint of the store refused the write".to_owned()),
            422 => ("refused", "a rule of the store refused the write".to_owned()),
            503 => ("unavailable", self.to_string()),
            _ => {
                tracing::error!(error = %self, "a request failed");
                ("internal", "internal error".to_owned())
            }
        };
        let body = serde_json::json!({ "error": kind, "message": message }).to_string();
        (status, [(CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error: Error) -> (u16, serde_json::Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = futures_body(response);
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// The body of a response built from a `String` (one frame, ready at once).
    fn futures_body(response: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        let collected = futures::executor::block_on(response.into_body().collect()).unwrap();
        collected.to_bytes().to_vec()
    }

    #[test]
    fn errors_answer_with_their_status_and_a_small_json_body() {
        let (status, body) = answer(Error::validation("bad name"));
        assert_eq!((status, body["error"].as_str()), (400, Some("validation")));
        assert!(body["message"].as_str().unwrap().contains("bad name"));
        let unique = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
        let (status, body) = answer(Error::Sqlite(rusqlite::Error::SqliteFailure(unique, Some("UNIQUE".into()))));
        assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
        assert!(!body["message"].as_str().unwrap().contains("UNIQUE"), "no schema: {body}");
        let (status, body) = answer(Error::refused("u2", "unique(email)"));
        assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "a unique field's refusal");
        assert!(!body["message"].as_str().unwrap().contains("email"), "no field: {body}");
        let (status, body) = answer(Error::refused("o1", "foreign_key(group_id -> groups)"));
        assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "a missing referenced key");
        assert!(!body.to_string().contains("groups"), "no table: {body}");
        let (status, body) = answer(Error::refused("o1", "check"));
        assert_eq!((status, body["error"].as_str()), (422, Some("refused")));
        let (status, body) = answer(Error::NotFound { key: "k".into() });
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        assert_eq!(answer(Error::Closed).0, 503);
        let (status, body) = answer(Error::Io(std::io::Error::other("secret path /etc/x")));
        assert_eq!((status, body["message"].as_str()), (500, Some("internal error")), "no internals");
    }
}
