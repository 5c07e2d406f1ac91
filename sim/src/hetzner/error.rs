//! Hetzner's error answer, `{"error": {"code", "message", "details"}}`, with the codes and
//! statuses of its documentation: `invalid_input` and `json_error` 400, `unauthorized` 401,
//! `forbidden` and `resource_limit_exceeded` 403, `not_found` 404, `uniqueness_error` and
//! `conflict` 409, the operation-specific 422s, `locked` 423, `rate_limit_exceeded` 429,
//! `server_error` 500, `unavailable` 503.

use serde_json::{Value as Json, json};

/// One error answer.
#[derive(Debug)]
pub(crate) struct HzError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) details: Json,
}

impl HzError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> HzError {
        HzError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    /// 400 `invalid_input` about one field, with Hetzner's `details.fields`.
    pub(crate) fn invalid(field: &str, why: impl Into<String>) -> HzError {
        let why = why.into();
        HzError {
            details: json!({"fields": [{"name": field, "messages": [why.clone()]}]}),
            ..HzError::new(
                400,
                "invalid_input",
                format!("invalid input in field '{field}': {why}"),
            )
        }
    }

    /// 400 `json_error`: the body is not JSON (or not an object).
    pub(crate) fn json(why: impl Into<String>) -> HzError {
        HzError::new(400, "json_error", why)
    }

    pub(crate) fn not_found() -> HzError {
        HzError::new(404, "not_found", "resource not found")
    }

    /// 409 `uniqueness_error` on `field`.
    pub(crate) fn uniqueness(field: &str, message: impl Into<String>) -> HzError {
        HzError {
            details: json!({"fields": [{"name": field}]}),
            ..HzError::new(409, "uniqueness_error", message)
        }
    }

    /// A 422 with an operation-specific code (`resource_in_use`, `firewall_already_applied`…).
    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> HzError {
        HzError::new(422, code, message)
    }

    /// The error for a bare status, as the rate limiter or a [`crate::Fault::Status`] sends it.
    pub(crate) fn for_status(status: u16) -> HzError {
        let (code, message) = match status {
            400 => ("invalid_input", "invalid input"),
            401 => ("unauthorized", "unable to authenticate"),
            403 => ("forbidden", "insufficient permissions for this request"),
            404 => ("not_found", "resource not found"),
            405 => ("method_not_allowed", "method not allowed"),
            409 => (
                "conflict",
                "resource has changed during the request, please retry",
            ),
            412 => (
                "resource_unavailable",
                "the requested resource is currently unavailable",
            ),
            422 => ("service_error", "the request could not be processed"),
            423 => ("locked", "resource is locked by another action"),
            429 => ("rate_limit_exceeded", "limit of requests per hour reached"),
            503 => ("unavailable", "service is temporarily unavailable"),
            504 => ("timeout", "the request timed out"),
            500..=599 => ("server_error", "an internal server error occurred"),
            _ => ("server_error", "injected fault"),
        };
        HzError::new(status, code, message)
    }

    pub(crate) fn body(&self) -> Json {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}
