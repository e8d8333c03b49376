//! A fake Kubernetes API server for the Kubernetes executor's tests: it answers the three
//! calls dvx makes (create a Job, list the run's Jobs, delete a Job) on 127.0.0.1, records
//! every request, and "runs" a Job the way its pods would, by starting the manifest's own
//! command (`dvx exec-task ...`, with the binary under test) for each index, so results
//! appear on the test's folder remote; then it reports the Job Complete. It can also fail a
//! Job without running it, or leave it running until it is deleted.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::routing::{delete, post};
use axum::Router;
use serde_json::{json, Value};

use crate::common::dvx_bin;

/// What the fake does with a Job it is given.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Run each index's command, then report Complete (or Failed if one exited non-zero).
    Run,
    /// Report Failed with this reason at once, running nothing (no result appears).
    Fail(&'static str),
    /// Report it running (pods ready) until it is deleted.
    Hang,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub body: Value,
}

struct Inner {
    mode: Mode,
    requests: Vec<Request>,
    jobs: BTreeMap<String, Value>,
    /// Environment the "pods" get besides the manifest's (the remote's credentials a Secret
    /// would hold).
    env: Vec<(String, String)>,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FakeKube {
    shared: Shared,
    pub url: String,
    _rt: tokio::runtime::Runtime,
}

type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], String);

fn reply(code: StatusCode, v: &Value) -> Reply {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
}

fn record(s: &Shared, method: &'static str, path: String, query: Option<String>, body: &str) {
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    s.lock().requests.push(Request {
        method,
        path,
        query: query.unwrap_or_default(),
        body,
    });
}

/// Run the Job as its pods would: each index with the manifest's command and environment.
fn run_job(s: Shared, name: String, job: Value) {
    let spec = &job["spec"];
    let n = spec["completions"].as_u64().unwrap_or(1);
    let c = &spec["template"]["spec"]["containers"][0];
    let cmd: Vec<String> = c["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let env = s.lock().env.clone();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for i in 0..n {
        let ok = Command::new(dvx_bin())
            .args(&cmd[1..])
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .env("DVX_NODE", "fake-node-1")
            .envs(env.iter().cloned())
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            done.push(i)
        } else {
            failed.push(i)
        }
    }
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let (t, reason) = if failed.is_empty() {
        ("Complete", "CompletionsReached")
    } else {
        ("Failed", "BackoffLimitExceeded")
    };
    let mut st = s.lock();
    if let Some(j) = st.jobs.get_mut(&name) {
        j["status"] = json!({
            "succeeded": done.len(),
            "failed": failed.len(),
            "completedIndexes": list(&done),
            "conditions": [{"type": t, "status": "True", "reason": reason}],
        });
    }
}

async fn create(
    State(s): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    RawQuery(q): RawQuery,
    body: String,
) -> Reply {
    record(
        &s,
        "POST",
        format!("/apis/batch/v1/namespaces/{ns}/jobs"),
        q,
        &body,
    );
    let Ok(mut job) = serde_json::from_str::<Value>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            &json!({"kind": "Status", "message": "not JSON"}),
        );
    };
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mode = s.lock().mode.clone();
    job["metadata"]["namespace"] = json!(ns);
    job["metadata"]["uid"] = json!(format!("uid-{name}"));
    job["status"] = match mode {
        Mode::Run => json!({"active": 1}),
        Mode::Hang => json!({"active": 1, "ready": 1}),
        Mode::Fail(reason) => json!({
            "failed": 1,
            "conditions": [{"type": "Failed", "status": "True", "reason": reason}],
        }),
    };
    s.lock().jobs.insert(name.clone(), job.clone());
    if matches!(mode, Mode::Run) {
        let (s2, j2) = (s.clone(), job.clone());
        std::thread::spawn(move || run_job(s2, name, j2));
    }
    reply(StatusCode::CREATED, &job)
}

async fn list(
    State(s): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    record(
        &s,
        "GET",
        format!("/apis/batch/v1/namespaces/{ns}/jobs"),
        q.clone(),
        "",
    );
    // labelSelector=KEY%3DVALUE (or KEY=VALUE): only the Jobs carrying that label.
    let q = q
        .unwrap_or_default()
        .replace("%3D", "=")
        .replace("%2F", "/");
    let sel = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .and_then(|s| s.split_once('='));
    let st = s.lock();
    let items: Vec<&Value> = st
        .jobs
        .values()
        .filter(|j| sel.is_some_and(|(k, v)| j["metadata"]["labels"][k] == v))
        .collect();
    reply(
        StatusCode::OK,
        &json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

async fn remove(
    State(s): State<Shared>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    RawQuery(q): RawQuery,
    body: String,
) -> Reply {
    record(
        &s,
        "DELETE",
        format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}"),
        q,
        &body,
    );
    match s.lock().jobs.remove(&name) {
        Some(job) => reply(StatusCode::OK, &job),
        None => reply(
            StatusCode::NOT_FOUND,
            &json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
    }
}

impl FakeKube {
    pub fn start(mode: Mode, env: Vec<(String, String)>) -> FakeKube {
        let shared = Shared(Arc::new(Mutex::new(Inner {
            mode,
            requests: Vec::new(),
            jobs: BTreeMap::new(),
            env,
        })));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port on 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let app = Router::new()
            .route(
                "/apis/batch/v1/namespaces/{ns}/jobs",
                post(create).get(list),
            )
            .route("/apis/batch/v1/namespaces/{ns}/jobs/{name}", delete(remove))
            .with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKube {
            shared,
            url,
            _rt: rt,
        }
    }

    /// A kubeconfig pointing at the fake, with namespace `ci`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: ci\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url
        )
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The bodies of the Jobs created, in order.
    pub fn created(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body)
            .collect()
    }
}
