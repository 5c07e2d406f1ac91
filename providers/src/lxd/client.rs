//! The client: LXD's REST API over its unix socket, one HTTP/1.1 exchange per call, and the
//! wait for an asynchronous operation to finish. Reading an object checks it is this
//! deployment's before anything uses it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::{KIND, Lxd, OWNER_KEY};
use crate::api::ProviderError;

/// An answer from LXD: the HTTP status and the JSON envelope.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Json,
}

impl Answer {
    fn metadata(&self) -> &Json {
        &self.body["metadata"]
    }

    pub(super) fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("no error message")
            .to_string()
    }
}

impl Lxd {
    fn unreachable(&self, resource: &str, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::Unreachable {
            provider: KIND,
            resource: resource.to_string(),
            message: format!("{} ({message})", self.socket.display()),
        }
    }

    pub(super) fn refused(&self, resource: &str, answer: &Answer) -> ProviderError {
        ProviderError::Api {
            provider: KIND,
            resource: resource.to_string(),
            status: answer.status.as_u16(),
            message: answer.error(),
        }
    }

    /// One HTTP/1.1 exchange on a fresh connection (a unix socket costs nothing to open).
    pub(super) async fn call(
        &self,
        resource: &str,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<Answer, ProviderError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let driver = tokio::spawn(connection);
        let method_name = method.to_string();
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "lxd")
            .header("Connection", "close");
        let is_raw = headers.iter().any(|(k, _)| *k == "Content-Type");
        if !is_raw {
            builder = builder.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| self.unreachable(resource, e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(resource, e))?;
        let status = response.status();
        tracing::debug!(target: "fitter::lxd", "{method_name} {path} -> {status}");
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(resource, e))?
            .to_bytes();
        // Let LXD close the connection itself: it finishes some work (a network's firewall
        // rules) after answering, and a connection torn down under it cancels that work.
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        Ok(Answer { status, body })
    }

    pub(super) async fn json(
        &self,
        resource: &str,
        method: Method,
        path: &str,
        body: Option<Json>,
    ) -> Result<Answer, ProviderError> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        self.call(resource, method, path, bytes, &[]).await
    }

    /// Fails unless the answer is a success; waits for it when it is an operation.
    pub(super) async fn expect_ok(
        &self,
        resource: &str,
        answer: Answer,
    ) -> Result<Json, ProviderError> {
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        if answer.body["type"] == "async" {
            let op = answer.body["operation"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            return self.wait_operation(resource, &op).await;
        }
        Ok(answer.metadata().clone())
    }

    async fn wait_operation(&self, resource: &str, op: &str) -> Result<Json, ProviderError> {
        let answer = self
            .json(
                resource,
                Method::GET,
                &format!("{op}/wait?timeout=300"),
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        let meta = answer.metadata();
        match meta["status"].as_str() {
            Some("Success") => Ok(meta.clone()),
            _ => Err(ProviderError::Api {
                provider: KIND,
                resource: resource.to_string(),
                status: meta["status_code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(answer.status.as_u16()),
                message: meta["err"]
                    .as_str()
                    .unwrap_or("operation failed")
                    .to_string(),
            }),
        }
    }

    /// Waits until no LXD operation on the instance is running. A create or a start that a
    /// killed fitter asked for goes on inside LXD after the process is gone, and for its
    /// length the instance already reads as `Stopped`: files pushed into it then fail with
    /// LXD's internals (`dial unix .../forkfile.sock: no such file`, seen in CI), a second
    /// create fails as "already exists". How those operations end does not matter here: the
    /// caller reads the instance again afterwards.
    pub(super) async fn settle(&self, resource: &str, instance: &str) -> Result<(), ProviderError> {
        let target = format!("/1.0/instances/{instance}");
        let answer = self
            .json(resource, Method::GET, "/1.0/operations?recursion=1", None)
            .await?;
        let by_status = self.expect_ok(resource, answer).await?;
        // Collected before waiting: the listing's iterators are not held across an await.
        let mut under_way = Vec::new();
        for op in by_status.as_object().into_iter().flat_map(|m| m.values()) {
            for op in op.as_array().into_iter().flatten() {
                let running = matches!(op["status"].as_str(), Some("Running" | "Pending"));
                let touches = op["resources"]["instances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Json::as_str)
                    .any(|url| url.split('?').next() == Some(target.as_str()));
                if let Some(id) = op["id"].as_str().filter(|_| running && touches) {
                    under_way.push(id.to_string());
                }
            }
        }
        for id in under_way {
            tracing::debug!(target: "fitter::lxd", "{resource}: waiting for LXD's operation {id} on {instance}");
            let path = format!("/1.0/operations/{id}/wait?timeout=300");
            // A 404 is an operation that ended between the listing and the wait.
            self.json(resource, Method::GET, &path, None).await?;
        }
        Ok(())
    }

    /// The object at `path`, or `None` on 404; errors unless it is this deployment's.
    pub(super) async fn get_owned(
        &self,
        resource: &str,
        path: &str,
    ) -> Result<Option<Json>, ProviderError> {
        let answer = self.json(resource, Method::GET, path, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.refused(resource, &answer));
        }
        let meta = answer.metadata().clone();
        if meta["managed"] == json!(false) {
            // A bare kernel interface LXD does not manage (left by a failed delete): not an
            // LXD object at all.
            return Ok(None);
        }
        let owner = meta["config"][OWNER_KEY].as_str().unwrap_or("");
        if owner != self.deployment {
            return Err(ProviderError::NotOwned {
                provider: KIND,
                resource: resource.to_string(),
                deployment: self.deployment.clone(),
                owner: if owner.is_empty() {
                    "not created by fitter".to_string()
                } else {
                    format!("it belongs to deployment `{owner}`")
                },
            });
        }
        Ok(Some(meta))
    }

    pub(super) async fn list(&self, what: &str) -> Result<Vec<Json>, ProviderError> {
        let answer = self
            .json(what, Method::GET, &format!("/1.0/{what}?recursion=1"), None)
            .await?;
        let meta = self.expect_ok(what, answer).await?;
        Ok(meta.as_array().cloned().unwrap_or_default())
    }
}
