//! Where a remote is and how to reach it: URLs, endpoints, plain http, AWS profiles.

use std::collections::HashMap;
use std::fs;

use dvx_store::config::{RemoteConfig, RemoteSecrets};

use crate::error::{RemoteError, Result};
use crate::RemoteErrorKind;

/// `(scheme, bucket or folder, prefix)` of a remote URL.
pub fn parse_url(url: &str) -> Result<(String, String, String)> {
    let bad = |why: &str| RemoteError::Remote {
        remote: String::new(),
        message: format!("{url:?}: {why}"),
        kind: RemoteErrorKind::Config,
    };
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            if !rest.starts_with('/') {
                return Err(bad("a file URL needs an absolute path (file:///path)"));
            }
            return Ok((
                scheme,
                rest.trim_end_matches('/').to_string(),
                String::new(),
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket or container named"));
        }
        let scheme = match scheme.as_str() {
            "s3" | "s3a" => "s3",
            "gs" | "gcs" => "gs",
            "az" | "azure" | "abfs" => "az",
            _ => return Err(bad("unknown scheme (use s3://, gs://, az:// or file://)")),
        };
        return Ok((
            scheme.to_string(),
            bucket.to_string(),
            prefix.trim_matches('/').to_string(),
        ));
    }
    if url.is_empty() {
        return Err(bad("empty URL"));
    }
    Ok((
        "file".into(),
        url.trim_end_matches('/').to_string(),
        String::new(),
    ))
}

pub(crate) fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    matches!(host, "127.0.0.1" | "localhost" | "[" | "::1") || host.starts_with("127.")
}

/// An endpoint is for S3-compatible servers and Azure emulators only.
pub fn check_endpoint(name: &str, scheme: &str, rc: &RemoteConfig) -> Result<()> {
    if rc.endpoint.is_some() && !matches!(scheme, "s3" | "az") {
        return Err(RemoteError::Remote {
            remote: name.to_string(),
            message: format!("--endpoint applies to s3:// and az:// remotes, not {scheme}://"),
            kind: RemoteErrorKind::Config,
        });
    }
    Ok(())
}

/// Whether an endpoint is plain http, refusing that for hosts other than this machine unless
/// the remote allows it.
pub(crate) fn check_http(name: &str, ep: &str, rc: &RemoteConfig) -> Result<bool> {
    let http = ep.starts_with("http://");
    if http && !(rc.allow_http.unwrap_or(false) || is_loopback(ep)) {
        return Err(RemoteError::Remote {
            remote: name.to_string(),
            message: format!("endpoint {ep} is plain http"),
            kind: RemoteErrorKind::Config,
        });
    }
    Ok(http)
}

/// Credentials from an AWS profile (~/.aws/credentials and ~/.aws/config).
pub(crate) fn aws_profile(profile: &str) -> (RemoteSecrets, Option<String>, Option<String>) {
    let home = std::env::var("HOME").unwrap_or_default();
    let creds_path = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or_else(|_| format!("{home}/.aws/credentials"));
    let config_path =
        std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config"));
    let section = |path: &str, names: &[String]| -> HashMap<String, String> {
        let text = fs::read_to_string(path).unwrap_or_default();
        let mut cur = false;
        let mut out = HashMap::new();
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with('[') && l.ends_with(']') {
                let n = l[1..l.len() - 1].trim();
                cur = names.iter().any(|x| x == n);
            } else if cur {
                if let Some((k, v)) = l.split_once('=') {
                    out.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        out
    };
    let c = section(&creds_path, &[profile.to_string()]);
    let k = section(
        &config_path,
        &[format!("profile {profile}"), profile.to_string()],
    );
    let get = |key: &str| c.get(key).or_else(|| k.get(key)).cloned();
    (
        RemoteSecrets {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
            session_token: get("aws_session_token"),
        },
        k.get("region").cloned(),
        k.get("endpoint_url").cloned(),
    )
}
