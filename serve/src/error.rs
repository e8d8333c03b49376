//! The one error type of dvx-serve: what stops the server from starting or serving.

use std::net::SocketAddr;

use dvx_engine::store::ErrorClass;
use dvx_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("refusing to listen on {addr} without a token: anyone who can reach it could read the project")]
    NeedsToken { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ServeError::Engine(e) => e.class(),
            ServeError::NeedsToken { .. } => ErrorClass::Invalid,
            ServeError::Bind { .. } | ServeError::Io(_) => ErrorClass::Failed,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ServeError::Engine(e) => e.hint(),
            ServeError::NeedsToken { .. } => Some(
                "set DVX_SERVE_TOKEN (or --token) to a secret, or listen on 127.0.0.1 (the default)"
                    .into(),
            ),
            ServeError::Bind { .. } => {
                Some("choose another port with --addr 127.0.0.1:PORT (port 0 picks a free one)".into())
            }
            ServeError::Io(_) => None,
        }
    }
}
