//! The dashboard at `/ui/`: static files embedded in the binary (`assets/`), served on the
//! API port. The page is a client of the JSON API like any other: it sends the API key the
//! operator typed, so this module needs no state and no authentication of its own.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "src/ui/assets/"]
struct Assets;

/// Only our own files run and load; the page talks to nothing but this node's API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Where the dashboard is: its entry (redirected to the page), the page, its other files.
pub const ENTRY_PATH: &str = "/ui";
pub const INDEX_PATH: &str = "/ui/";
pub const FILES_PATH: &str = "/ui/{*path}";

pub async fn redirect() -> Redirect {
    Redirect::permanent(INDEX_PATH)
}

pub async fn index() -> Response {
    asset("index.html")
}

pub async fn file(Path(path): Path<String>) -> Response {
    asset(&path)
}

/// An embedded file with its content type, or 404. Nothing is cached: a node upgraded in
/// place serves its new page at the next load.
fn asset(path: &str) -> Response {
    let (status, content_type, body) = match Assets::get(path) {
        Some(file) => (StatusCode::OK, content_type(path), file.data.into_owned()),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"no such file in the dashboard\n".to_vec(),
        ),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        let request = Request::get(path).body(Body::empty()).expect("a request");
        let router = axum::Router::new()
            .route(ENTRY_PATH, axum::routing::get(redirect))
            .route(INDEX_PATH, axum::routing::get(index))
            .route(FILES_PATH, axum::routing::get(file));
        router.oneshot(request).await.expect("infallible")
    }

    async fn text(response: Response) -> String {
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_page_is_served_with_a_strict_policy() {
        let r = get("/ui/").await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert!(text(r).await.contains("<title>helix</title>"));

        let js = get("/ui/app.js").await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let css = get("/ui/style.css").await;
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn a_bare_ui_redirects_and_unknown_files_are_404() {
        let r = get("/ui").await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
        for path in ["/ui/nope.js", "/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml"] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    /// The policy forbids inline code: the page must not need any.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = Assets::get("index.html").expect("index.html is embedded");
        let page = String::from_utf8(page.data.into_owned()).expect("utf-8");
        for tag in page.split("<script").skip(1) {
            let (open, rest) = tag.split_once('>').expect("a closed tag");
            assert!(open.contains("src="), "an inline <script{open}>");
            assert!(rest.starts_with("</script>"), "a <script> with content");
        }
        for forbidden in [
            "<style",
            " style=",
            " onclick=",
            " onload=",
            " onsubmit=",
            "http://",
            "https://",
        ] {
            assert!(!page.contains(forbidden), "the page contains {forbidden:?}");
        }
    }
}
