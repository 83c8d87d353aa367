//! The core's one error type. Each variant knows its HTTP status, its stable snake_case code
//! and the OpenAI error `type`; the server renders it in the caller's dialect.

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("model `{model}` is not a route, lane or alias here; routes are: {routes}; lanes are: {lanes}")]
    UnknownModel {
        model: String,
        routes: String,
        lanes: String,
    },
    #[error("task `{task}` (from x-switchyard-task) is not a route; routes are: {routes}")]
    UnknownTask { task: String, routes: String },
    #[error("the request names no route and there is no `default` route; routes are: {routes}")]
    NoDefaultRoute { routes: String },
    #[error("no lane could answer route `{route}`: {summary}")]
    NoLaneAvailable {
        route: String,
        summary: String,
        rate_limited: bool,
        /// No lane may or can take this request as it is (premium not allowed, tools or a
        /// prompt too long for every lane): a 400, so clients do not retry it.
        permanent: bool,
        /// When a lane skipped for its quota frees up again, in seconds (for `Retry-After`).
        retry_after_secs: Option<u64>,
    },
    #[error("lane `{lane}` refused the request: {message}")]
    UpstreamRejected {
        lane: String,
        status: u16,
        message: String,
        code: Option<String>,
    },
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::UnknownModel { .. }
            | GatewayError::UnknownTask { .. }
            | GatewayError::NoDefaultRoute { .. } => 404,
            GatewayError::NoLaneAvailable { rate_limited: true, .. } => 429,
            GatewayError::NoLaneAvailable { permanent: true, .. } => 400,
            GatewayError::NoLaneAvailable { .. } => 503,
            GatewayError::UpstreamRejected { status, .. } => *status,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> String {
        match self {
            GatewayError::UnknownModel { .. } => "model_not_found".into(),
            GatewayError::UnknownTask { .. } => "task_not_found".into(),
            GatewayError::NoDefaultRoute { .. } => "no_default_route".into(),
            GatewayError::NoLaneAvailable { rate_limited: true, .. } => "rate_limited".into(),
            GatewayError::NoLaneAvailable { permanent: true, .. } => "no_capable_lane".into(),
            GatewayError::NoLaneAvailable { .. } => "no_lane_available".into(),
            GatewayError::UpstreamRejected { code, .. } => code.clone().unwrap_or_else(|| "upstream_rejected".into()),
        }
    }

    /// Seconds the caller should wait before asking again, when known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::NoLaneAvailable { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }

    /// OpenAI's error `type`.
    pub fn openai_type(&self) -> &'static str {
        match self.status() {
            404 | 400..=428 | 430..=499 => "invalid_request_error",
            429 => "rate_limit_error",
            _ => "server_error",
        }
    }
}
