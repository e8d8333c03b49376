//! dvx-serve: `dvx serve`, one long-running process over one project. It serves read-only
//! pages of the pipeline (the stage graph coloured by state), the runs of each commit with
//! their records and output, and lineage of any `PATH@REV`; every page has a JSON twin under
//! `/api/` with the shape of the matching CLI `--json`; `/metrics` is for Prometheus and
//! `/healthz` for whoever watches the process.
//!
//! Each request opens the store read-only, so pages are never stale and never block a
//! `dvx run` writing meanwhile. It listens on 127.0.0.1 unless given a token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dvx_engine::store::ErrorClass;
use dvx_engine::EngineError;

pub mod error;
mod html;
mod metrics;
mod scheduler;
mod views;

pub use error::ServeError;

/// The environment variable holding the token (safer than `--token`, which `ps` shows).
pub const TOKEN_ENV: &str = "DVX_SERVE_TOKEN";

pub struct Options {
    /// The project's folder (or one inside it).
    pub root: PathBuf,
    pub addr: SocketAddr,
    /// Required to listen on anything but loopback; asked of every request when set.
    pub token: Option<String>,
}

struct App {
    root: PathBuf,
    token: Option<blake3::Hash>,
    counters: metrics::Counters,
    triggers: Vec<dvx_engine::trigger::Trigger>,
    sched: Arc<scheduler::Stats>,
}

/// Serve until SIGINT or SIGTERM. `ready` is told the address listened on (the port, when
/// 0 was asked for) once connections are accepted.
pub fn serve(opts: Options, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    if !opts.addr.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(ServeError::NeedsToken { addr: opts.addr });
    }
    // A project that cannot be opened stops the server now, not at the first request.
    let repo = dvx_engine::store::Repo::open(&opts.root, dvx_engine::store::Access::Read)
        .map_err(EngineError::from)?;
    // So is an invalid dvx.yaml (a trigger's definition included), with its file:line:column.
    let triggers = match dvx_engine::run::load_pipeline(&repo.root) {
        Ok(p) => p.triggers,
        Err(EngineError::NoPipeline(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let app = Arc::new(App {
        root: repo.root.clone(),
        token: opts
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| blake3::hash(t.as_bytes())),
        counters: metrics::Counters::default(),
        triggers: triggers.clone(),
        sched: Arc::default(),
    });
    drop(repo);
    // The scheduler fires triggers on its own thread; stopping the server stops it (a run it
    // started is interrupted, and its firing runs again at the next start).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let children = dvx_engine::exec::Children::default();
    let sched = (!triggers.is_empty()).then(|| {
        let s = scheduler::Scheduler::new(
            app.root.clone(),
            triggers,
            app.sched.clone(),
            stop.clone(),
            children.clone(),
        );
        std::thread::spawn(move || s.run())
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.addr,
                source,
            })?;
        ready(listener.local_addr()?);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stopped())
            .await?;
        Ok::<(), ServeError>(())
    })?;
    stop.store(true, Ordering::SeqCst);
    children.cancel_all();
    if let Some(t) = sched {
        let _ = t.join();
    }
    Ok(())
}

async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pipeline_page))
        .route("/api/pipeline", get(pipeline_json))
        .route("/runs", get(runs_page))
        .route("/api/runs", get(runs_json))
        .route("/runs/{id}", get(run_page))
        .route("/api/runs/{id}", get(run_json))
        .route("/lineage", get(lineage_page))
        .route("/api/lineage", get(lineage_json))
        .route("/history", get(history_page))
        .route("/api/history", get(history_json))
        .route("/live", get(live_page))
        .route("/api/live", get(live_json))
        .route("/commits/{rev}", get(commit_page))
        .route("/api/commits/{rev}", get(commit_json))
        .route("/triggers", get(triggers_page))
        .route("/api/triggers", get(triggers_json))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(app)
}

/// With a token: every request carries it (`Authorization: Bearer`, the `dvx_token` cookie,
/// or `?token=` once, which sets the cookie). The token is compared by hash and never logged.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let Some(want) = app.token else {
        return next.run(req).await;
    };
    let given = token_of(req.headers(), req.uri().query());
    match given {
        Some((t, from_query)) if blake3::hash(t.as_bytes()) == want => {
            let mut resp = next.run(req).await;
            if from_query {
                if let Ok(v) = format!("dvx_token={t}; HttpOnly; SameSite=Strict; Path=/").parse() {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
            }
            resp
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Html(html::error(
                "this server asks for a token",
                Some("open the address with ?token=TOKEN once, or send `Authorization: Bearer TOKEN`"),
            )),
        )
            .into_response(),
    }
}

/// The token a request carries, and whether it came in the query string.
fn token_of(h: &HeaderMap, query: Option<&str>) -> Option<(String, bool)> {
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some((t.trim().to_string(), false));
        }
    }
    for c in h.get_all(header::COOKIE) {
        for part in c.to_str().unwrap_or("").split(';') {
            if let Some(t) = part.trim().strip_prefix("dvx_token=") {
                return Some((t.to_string(), false));
            }
        }
    }
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| (t.to_string(), true))
}

/// A failed read, answered as a page or as JSON with the CLI's message and hint.
struct Failure {
    status: StatusCode,
    message: String,
    hint: Option<String>,
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Failure {
            status: match e.class() {
                ErrorClass::Invalid => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// Run a read of the project on a blocking thread (the store and engine are synchronous).
async fn read<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&Path) -> dvx_engine::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    let root = app.root.clone();
    let res = tokio::task::spawn_blocking(move || f(&root))
        .await
        .map_err(|e| Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("internal error: {e}"),
            hint: None,
        })
        .and_then(|r| r.map_err(Failure::from));
    let c = &app.counters;
    match &res {
        Ok(_) => c.requests.fetch_add(1, Ordering::Relaxed),
        Err(f) if f.status == StatusCode::NOT_FOUND => c.not_found.fetch_add(1, Ordering::Relaxed),
        Err(_) => c.failed.fetch_add(1, Ordering::Relaxed),
    };
    res
}

fn page(r: Result<String, Failure>) -> Response {
    match r {
        Ok(body) => Html(body).into_response(),
        Err(f) => (f.status, Html(html::error(&f.message, f.hint.as_deref()))).into_response(),
    }
}

fn json<T: serde::Serialize>(r: Result<T, Failure>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(f) => (
            f.status,
            Json(serde_json::json!({"error": f.message, "hint": f.hint})),
        )
            .into_response(),
    }
}

async fn pipeline_page(State(app): State<Arc<App>>) -> Response {
    page(read(&app, |r| views::pipeline(r).map(|v| html::pipeline(&v))).await)
}

async fn pipeline_json(State(app): State<Arc<App>>) -> Response {
    json(read(&app, views::pipeline).await)
}

#[derive(serde::Deserialize)]
struct Limit {
    n: Option<usize>,
}

async fn runs_page(State(app): State<Arc<App>>, Query(q): Query<Limit>) -> Response {
    let n = q.n.unwrap_or(50);
    page(read(&app, move |r| views::commits(r, n).map(|c| html::runs(&c))).await)
}

async fn runs_json(State(app): State<Arc<App>>, Query(q): Query<Limit>) -> Response {
    let n = q.n.unwrap_or(50);
    json(read(&app, move |r| views::commits(r, n)).await)
}

async fn run_page(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    page(read(&app, move |r| views::run(r, &id).map(|v| html::run(&v))).await)
}

async fn run_json(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    json(
        read(&app, move |r| {
            views::run(r, &id).map(|v| views::run_json(&v))
        })
        .await,
    )
}

#[derive(serde::Deserialize)]
struct Target {
    target: String,
    #[serde(default)]
    downstream: bool,
}

async fn lineage_page(State(app): State<Arc<App>>, Query(q): Query<Target>) -> Response {
    page(
        read(&app, move |r| {
            views::lineage(r, &q.target, q.downstream).map(|g| html::lineage(&q.target, &g))
        })
        .await,
    )
}

async fn lineage_json(State(app): State<Arc<App>>, Query(q): Query<Target>) -> Response {
    json(read(&app, move |r| views::lineage(r, &q.target, q.downstream)).await)
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    rev: Option<String>,
    n: Option<usize>,
}

async fn history_page(State(app): State<Arc<App>>, Query(q): Query<HistoryQuery>) -> Response {
    let n = q.n.unwrap_or(20);
    page(
        read(&app, move |r| {
            views::history(r, q.rev.as_deref(), n).map(|h| html::history(&h))
        })
        .await,
    )
}

async fn history_json(State(app): State<Arc<App>>, Query(q): Query<HistoryQuery>) -> Response {
    let n = q.n.unwrap_or(20);
    json(read(&app, move |r| views::history(r, q.rev.as_deref(), n)).await)
}

async fn live_page(State(app): State<Arc<App>>) -> Response {
    page(read(&app, |r| views::live(r).map(|l| html::live(l.as_ref()))).await)
}

async fn live_json(State(app): State<Arc<App>>) -> Response {
    json(read(&app, views::live).await)
}

#[derive(serde::Deserialize)]
struct Under {
    #[serde(default)]
    path: String,
}

async fn commit_page(
    State(app): State<Arc<App>>,
    UrlPath(rev): UrlPath<String>,
    Query(q): Query<Under>,
) -> Response {
    page(
        read(&app, move |r| {
            views::commit(r, &rev, &q.path).map(|c| html::commit(&c))
        })
        .await,
    )
}

async fn commit_json(
    State(app): State<Arc<App>>,
    UrlPath(rev): UrlPath<String>,
    Query(q): Query<Under>,
) -> Response {
    json(read(&app, move |r| views::commit(r, &rev, &q.path)).await)
}

fn trigger_views(app: &Arc<App>) -> Vec<views::TriggerView> {
    let pending = app
        .sched
        .pending
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    let problems = app
        .sched
        .problems
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    app.triggers
        .iter()
        .map(|t| views::TriggerView::of(t, &pending, &problems))
        .collect()
}

async fn triggers_page(State(app): State<Arc<App>>) -> Response {
    let ts = trigger_views(&app);
    page(
        read(&app, move |r| {
            views::with_firings(r, ts).map(|v| html::triggers(&v))
        })
        .await,
    )
}

async fn triggers_json(State(app): State<Arc<App>>) -> Response {
    let ts = trigger_views(&app);
    json(read(&app, move |r| views::with_firings(r, ts)).await)
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    let ts = trigger_views(&app);
    match read(&app, move |r| {
        let ts = views::with_firings(r, ts)?;
        Ok(metrics::render(r, &app2.counters)? + &metrics::render_triggers(&ts))
    })
    .await
    {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(f) => (f.status, f.message).into_response(),
    }
}

async fn not_found(State(app): State<Arc<App>>, req: Request) -> Response {
    app.counters.not_found.fetch_add(1, Ordering::Relaxed);
    let msg = format!("no page {}", req.uri().path());
    let hint =
        Some("the pages are /, /runs, /runs/RUN, /lineage?target=PATH@REV and their /api/ twins");
    (StatusCode::NOT_FOUND, Html(html::error(&msg, hint))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_from_header_cookie_or_query() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h, Some("a=1&token=q")), Some(("q".into(), true)));
        h.insert(header::COOKIE, "x=1; dvx_token=c".parse().unwrap());
        assert_eq!(token_of(&h, None), Some(("c".into(), false)));
        h.insert(header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(token_of(&h, Some("token=q")), Some(("b".into(), false)));
        assert_eq!(token_of(&HeaderMap::new(), Some("a=1")), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
