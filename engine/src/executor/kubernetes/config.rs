//! `[executor.kubernetes]` of config.toml: where the Jobs go and what they run with.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use dvx_store::config::line_col;
use dvx_store::StoreError;

use crate::error::Result;

/// The shortest and longest time between two looks at the run's Jobs, in seconds.
pub const POLL_RANGE: (f64, f64) = (0.05, 600.0);
/// Default seconds between two looks: one list call covers every Job of the run.
pub const DEFAULT_POLL: f64 = 2.0;
/// dvx inside the images, by default: found on the image's `PATH`.
pub const DEFAULT_DVX: &str = "dvx";

/// `[executor.kubernetes]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The namespace of the Jobs (default: the context's, else `default`).
    pub namespace: Option<String>,
    /// The kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context (default: its current context).
    pub context: Option<String>,
    /// An image holding dvx, pinned by digest (`NAME@sha256:...`): what a stage without
    /// `image:` runs in, and where a container stage's pod copies dvx from.
    pub image: Option<String>,
    /// dvx's path inside `image` (default: `dvx`, on the image's `PATH`).
    pub dvx: Option<String>,
    /// The pods' service account (default: the namespace's default).
    pub service_account: Option<String>,
    /// A Secret whose keys become the worker's environment (`envFrom`): the object store's
    /// credentials (`AWS_ACCESS_KEY_ID`, ...). They never appear in a manifest.
    pub credentials_secret: Option<String>,
    /// Seconds between two looks at the Jobs.
    pub poll_secs: Option<toml::Spanned<f64>>,
    /// The remote the data moves through (a name or URL; default: the project's default).
    pub remote: Option<String>,
}

#[derive(Deserialize, Default)]
struct Executors {
    kubernetes: Option<KubernetesConfig>,
}

/// The part of config.toml this reads; other sections (and other executors, which the
/// Slurm settings check for unknown names) belong to others.
#[derive(Deserialize)]
struct File {
    executor: Option<Executors>,
}

/// A DNS-1123 name as Kubernetes wants for namespaces, Secrets and service accounts.
fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

impl KubernetesConfig {
    /// Read `[executor.kubernetes]` of config.toml (absent: defaults); errors carry
    /// line:column.
    pub fn load(path: &Path) -> Result<KubernetesConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(StoreError::io(path, e).into()),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<KubernetesConfig> {
        let err = |at: Option<usize>, message: String| StoreError::Config {
            path: path.to_path_buf(),
            line: at.map_or(1, |s| line_col(text, s).0),
            column: at.map_or(1, |s| line_col(text, s).1),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            err(
                e.span().map(|s| s.start),
                e.message().trim_end().to_string(),
            )
        })?;
        let cfg = file.executor.and_then(|e| e.kubernetes).unwrap_or_default();
        if let Some(p) = &cfg.poll_secs {
            let v = *p.get_ref();
            if !(POLL_RANGE.0..=POLL_RANGE.1).contains(&v) {
                return Err(err(
                    Some(p.span().start),
                    format!(
                        "poll_secs: {v} is out of range ({} to {} seconds)",
                        POLL_RANGE.0, POLL_RANGE.1
                    ),
                )
                .into());
            }
        }
        for (key, v) in [
            ("namespace", &cfg.namespace),
            ("service_account", &cfg.service_account),
            ("credentials_secret", &cfg.credentials_secret),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !dns_name(v)) {
                return Err(err(
                    None,
                    format!("{key}: {v:?} is not a Kubernetes name (lower-case letters, digits, `-` and `.`)"),
                )
                .into());
            }
        }
        if let Some(i) = cfg.image.as_deref().filter(|i| !pinned(i)) {
            return Err(err(
                None,
                format!("image: {i:?} is not pinned by digest; give it as NAME@sha256:DIGEST (`skopeo inspect docker://{i}` prints the digest) so that every pod runs the same dvx"),
            )
            .into());
        }
        Ok(cfg)
    }

    pub fn poll(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(
            self.poll_secs
                .as_ref()
                .map_or(DEFAULT_POLL, |p| *p.get_ref()),
        )
    }

    /// dvx's path inside the images.
    pub fn dvx(&self) -> &str {
        self.dvx.as_deref().unwrap_or(DEFAULT_DVX)
    }
}

/// An image reference pinned by a registry digest: `NAME@sha256:` and 64 hexadecimal digits.
pub fn pinned(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, d)| {
        !name.is_empty() && d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> std::result::Result<KubernetesConfig, String> {
        KubernetesConfig::parse(Path::new(".dvx/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_read_and_checked_with_their_place() {
        let d = format!("reg.example/dvx@sha256:{}", "a".repeat(64));
        let c = cfg(&format!(
            "[core]\nformat = 1\n\n[executor.slurm]\npartition = \"x\"\n\n[executor.kubernetes]\nnamespace = \"ml\"\nimage = \"{d}\"\ncredentials_secret = \"dvx-s3\"\npoll_secs = 0.5\n"
        ))
        .unwrap();
        assert_eq!(c.namespace.as_deref(), Some("ml"));
        assert_eq!(c.poll(), std::time::Duration::from_millis(500));
        assert_eq!(c.dvx(), "dvx");
        assert_eq!(
            cfg("[core]\nformat = 1\n").unwrap(),
            KubernetesConfig::default()
        );
        let e = cfg("[executor.kubernetes]\npoll_secs = 0.001\n").unwrap_err();
        assert!(e.contains(":2:13:") && e.contains("out of range"), "{e}");
        let e = cfg("[executor.kubernetes]\nnamespce = \"x\"\n").unwrap_err();
        assert!(
            e.contains(":2:1:") && e.contains("unknown field `namespce`"),
            "{e}"
        );
        let e = cfg("[executor.kubernetes]\nimage = \"reg/dvx:1.0\"\n").unwrap_err();
        assert!(
            e.contains("not pinned by digest") && e.contains("skopeo"),
            "{e}"
        );
        let e = cfg("[executor.kubernetes]\ncredentials_secret = \"My_Secret\"\n").unwrap_err();
        assert!(e.contains("not a Kubernetes name"), "{e}");
    }

    #[test]
    fn only_a_digest_pins_an_image() {
        assert!(pinned(&format!("busybox@sha256:{}", "0f".repeat(32))));
        assert!(pinned(&format!(
            "r:5000/a/b:1.2@sha256:{}",
            "0f".repeat(32)
        )));
        assert!(!pinned("busybox:1.36"));
        assert!(!pinned("busybox@sha256:abc"));
        assert!(!pinned(&format!("@sha256:{}", "0f".repeat(32))));
    }
}
