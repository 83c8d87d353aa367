//! The MCP server: the tools `ask`, `lanes` and `usage`, so that Claude Desktop or any MCP
//! client can call the gateway's models as a tool. Served two ways over one handler: on stdio
//! by `switchyard mcp` (a gateway in this process, or a running one's `/mcp` with `--url`),
//! and as streamable HTTP at `/mcp` on the gateway, behind its keys.
//!
//! On stdio, stdout carries the protocol and nothing else: logs go to stderr, and nothing here
//! may use `output::line` or `output::text`.

use crate::app;
use crate::server::{self, AppState};
use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::gateway::{AnswerBody, Call, Gateway};
use switchyard_core::router::Hints;
use switchyard_core::{clock, usage};
use switchyard_protocol::Dialect;
use switchyard_protocol::openai::ChatRequest;
use switchyard_protocol::sse::SseDecoder;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct McpArgs {
    /// Config file (default: as `switchyard serve`; none found: the zero-config default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Relay to a running gateway's `/mcp` instead of routing in this process (it then shares
    /// that gateway's health and quota counts; no config is read).
    #[arg(long, env = "SWITCHYARD_URL")]
    pub url: Option<String>,
    /// Key for --url (one of its `server.keys`).
    #[arg(long, env = "SWITCHYARD_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// The `ask` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskParams {
    /// The question or instruction, with any context it needs.
    pub prompt: String,
    /// A route (task) from the gateway's config, such as `code`; its chain of lanes is tried
    /// in order. Default: the `default` route (or the route whose rules match).
    #[serde(default)]
    pub task: Option<String>,
    /// One lane only, by name (see the `lanes` tool); no fallback to another lane.
    #[serde(default)]
    pub lane: Option<String>,
    /// Local lanes only: nothing leaves this machine.
    #[serde(default)]
    pub local_only: bool,
    /// Longest answer, in tokens.
    #[serde(default)]
    pub max_tokens: Option<u64>,
}

/// The `usage` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Start of the period: a time back from now (`90s`, `30m`, `24h`, `7d`, `2w`), a UTC
    /// date (`2026-11-20`) or a time (`2026-11-20T10:00:00Z`). Default `24h`.
    #[serde(default)]
    pub since: Option<String>,
    /// End of the period, in the same forms. Default: now.
    #[serde(default)]
    pub until: Option<String>,
    /// Group rows by `lane` (default), `route`, `day` or `provider`.
    #[serde(default)]
    pub by: Option<String>,
}

/// The tools over one gateway. Over HTTP, one is made per request from the gateway current
/// then, so a config reload applies to the next call.
#[derive(Clone)]
pub struct Tools {
    gateway: Arc<Gateway>,
    /// The caller's key id (HTTP with keys), recorded in the ledger as for the API.
    caller: Option<String>,
    tool_router: ToolRouter<Self>,
}

/// A tool-level error: the client shows the message to its model, which can correct itself.
fn refused(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// Text for the model to read, and the same facts as JSON for programs.
fn answer(text: Vec<String>, structured: Value) -> CallToolResult {
    let mut r = CallToolResult::success(text.into_iter().map(ContentBlock::text).collect());
    r.structured_content = Some(structured);
    r
}

#[tool_router]
impl Tools {
    pub fn new(gateway: Arc<Gateway>, caller: Option<String>) -> Self {
        Tools {
            gateway,
            caller,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        annotations(
            title = "Ask a model",
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        ),
        description = "Ask a model through the Switchyard gateway: local models first, free cloud lanes next, paid ones only where its config allows. Returns the answer text and which lane answered (with the route and every lane tried)."
    )]
    async fn ask(&self, Parameters(p): Parameters<AskParams>) -> Result<CallToolResult, ErrorData> {
        Ok(self.ask_inner(p).await)
    }

    #[tool(
        annotations(title = "Lanes: health and quota", read_only_hint = true, open_world_hint = false),
        description = "Every lane (a model at a provider) of the Switchyard gateway: up, down, limited or disabled, whether it is local or premium, and each quota budget: used, left and when it resets."
    )]
    async fn lanes(&self) -> Result<CallToolResult, ErrorData> {
        let gw = &self.gateway;
        let v = json!({"service": "switchyard", "now_ms": gw.quota().now_ms(), "lanes": gw.status()});
        Ok(answer(vec![crate::status::render(&v, "switchyard")], v))
    }

    #[tool(
        annotations(title = "Usage report", read_only_hint = true, open_world_hint = false),
        description = "Usage of the Switchyard gateway over a period, from its ledger: requests, tokens in and out, cost, the share answered locally and fallbacks with their reasons, per lane, route, day or provider."
    )]
    async fn usage(&self, Parameters(p): Parameters<UsageParams>) -> Result<CallToolResult, ErrorData> {
        Ok(self.usage_inner(p).await)
    }
}

impl Tools {
    async fn ask_inner(&self, p: AskParams) -> CallToolResult {
        if p.prompt.trim().is_empty() {
            return refused("`prompt` is empty: give the question to ask");
        }
        let cfg = self.gateway.config();
        let lane = p.lane.as_deref().map(str::trim).filter(|l| !l.is_empty());
        let task = p.task.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if lane.is_some() && task.is_some() {
            return refused("give `task` or `lane`, not both: a lane is asked alone, a task tries its route's lanes");
        }
        if let Some(l) = lane
            && !cfg.lanes.contains_key(l)
        {
            let names: Vec<&str> = cfg.lanes.keys().map(String::as_str).collect();
            return refused(format!("unknown lane `{l}`; lanes are: {}", names.join(", ")));
        }
        if let Some(t) = task
            && !cfg.routes.contains_key(t)
        {
            let names: Vec<&str> = cfg.routes.keys().map(String::as_str).collect();
            return refused(format!("unknown task `{t}`; tasks (routes) are: {}", names.join(", ")));
        }
        let mut body = json!({
            "model": lane.unwrap_or("default"),
            "messages": [{"role": "user", "content": p.prompt}],
            "stream": false,
        });
        if let Some(n) = p.max_tokens {
            body["max_tokens"] = n.into();
        }
        let req: ChatRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(e) => return refused(format!("cannot make a request of these arguments: {e}")),
        };
        let call = Call {
            hints: Hints {
                task: task.map(str::to_owned),
                premium: false,
                fallback: false,
                local_only: p.local_only,
            },
            caller: self.caller.clone(),
            dialect: Dialect::OpenAi,
            origin: Some("mcp"),
            ..Default::default()
        };
        let got = match self.gateway.chat(req, call).await {
            Ok(a) => a,
            Err(refusal) => {
                let mut msg = refusal.error.to_string();
                if !refusal.attempts.is_empty() {
                    msg.push_str(&format!(" (lanes tried: {})", refusal.attempts));
                }
                return refused(msg);
            }
        };
        let (text, finish, model, usage) = match got.body {
            AnswerBody::Json(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => (
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    v["choices"][0]["finish_reason"].clone(),
                    v["model"].clone(),
                    v["usage"].clone(),
                ),
                Err(e) => {
                    return refused(format!("lane `{}` answered something that is not JSON: {e}", got.lane));
                }
            },
            // Not asked for (`stream: false`); read it whole all the same.
            AnswerBody::Stream(s) => match collect_stream(s).await {
                Ok(text) => (text, Value::Null, Value::Null, Value::Null),
                Err(e) => return refused(e),
            },
        };
        let mut trailer = format!(
            "[answered by lane `{}` (route `{}`; tried: {})",
            got.lane, got.route, got.attempts
        );
        if finish == "length" {
            trailer.push_str("; cut short at the token limit");
        }
        trailer.push(']');
        let structured = json!({
            "answer": text,
            "lane": got.lane,
            "route": got.route,
            "attempts": got.attempts,
            "model": model,
            "finish_reason": finish,
            "usage": usage,
        });
        answer(vec![text, trailer], structured)
    }

    async fn usage_inner(&self, p: UsageParams) -> CallToolResult {
        let now = clock::wall_now_ms();
        let since = match usage::parse_since(p.since.as_deref().unwrap_or("24h"), now) {
            Ok(s) => s,
            Err(e) => return refused(format!("since: {e}")),
        };
        let until = match p.until.as_deref().map(|u| usage::parse_since(u, now)).transpose() {
            Ok(u) => u.unwrap_or(now),
            Err(e) => return refused(format!("until: {e}")),
        };
        let by: usage::By = match p.by.as_deref().map_or(Ok(usage::By::Lane), str::parse) {
            Ok(b) => b,
            Err(e) => return refused(format!("by: {e}")),
        };
        // Records still queued are written first, so a question just asked is counted.
        self.gateway.flush().await;
        let report = match usage::report_from(&self.gateway.ledger().reader(), since, until, by).await {
            Ok(r) => r,
            Err(e) => return refused(format!("cannot read the ledger: {e}")),
        };
        match serde_json::to_value(&report) {
            Ok(v) => answer(vec![crate::usage::render(&v, "the gateway's ledger")], v),
            Err(e) => refused(format!("cannot encode the report: {e}")),
        }
    }
}

/// The text of an OpenAI stream, or the error it ended with.
async fn collect_stream(
    mut s: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::convert::Infallible>>,
) -> Result<String, String> {
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    while let Some(chunk) = s.next().await {
        let Ok(c) = chunk;
        decoder.push(&c, &mut events);
    }
    decoder.finish(&mut events);
    let mut text = String::new();
    for ev in events.iter().filter(|e| e.data != "[DONE]") {
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            continue;
        };
        if let Some(m) = v["error"]["message"].as_str() {
            return Err(m.to_owned());
        }
        text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    Ok(text)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("switchyard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Switchyard is a gateway to language models: local ones first, free cloud tiers next, \
                 paid ones only when allowed. `ask` sends a question and says which lane answered; \
                 `lanes` shows which are up and how much quota is left; `usage` reports what was used.",
            )
    }
}

/// `/mcp` on the gateway: streamable HTTP, stateless (each POST stands alone, answered with
/// JSON), so a reload applies to the next request and no stream stays open to hold up a
/// shutdown. Behind the same keys as the API; the `Host` header must be one of
/// `server.mcp_allowed_hosts`.
pub async fn http(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let caller = match server::authorize(&state, req.headers(), Dialect::OpenAi) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let bytes = match server::read_body(&state, &parts.headers, body, Dialect::OpenAi).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    let gateway = state.gateway.clone();
    let config = http_config(gateway.config());
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(gateway.clone(), caller.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    service.handle(req).await.map(Body::new).into_response()
}

/// The HTTP transport's settings from the config.
fn http_config(cfg: &switchyard_core::config::Config) -> StreamableHttpServerConfig {
    let hosts = allowed_hosts(&cfg.server);
    let base = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(cfg.server.max_body_bytes);
    if hosts.is_empty() {
        base.disable_allowed_hosts()
    } else {
        base.with_allowed_hosts(hosts)
    }
}

/// `server.mcp_allowed_hosts`, or by default the loopback names and the address the gateway
/// listens on (when it is one address, not all of them). Empty: any host.
pub fn allowed_hosts(server: &switchyard_core::config::ServerConfig) -> Vec<String> {
    if let Some(h) = &server.mcp_allowed_hosts {
        return h.clone();
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).into();
    let ip = server.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    hosts
}

/// `switchyard mcp`: serves the tools on stdio until the client closes it (or SIGINT/SIGTERM).
pub fn run(args: McpArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = rt.block_on(async move {
        match &args.url {
            Some(url) => relay(url, args.key.as_deref()).await,
            None => in_process(&args).await,
        }
    });
    // A read of stdin cannot be cancelled: do not wait on it after a signal.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn in_process(args: &McpArgs) -> Result<ExitCode> {
    let cfg = match app::load_or_default(args.config.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            crate::output::error(&e.to_string());
            return Ok(ExitCode::from(2));
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let gateway = Gateway::new(cfg, app::engine_factory(false))
        .await
        .map_err(anyhow::Error::msg)?;
    let served = Tools::new(gateway.clone(), None).serve(rmcp::transport::stdio()).await;
    let result = match served {
        Ok(running) => {
            let token = running.cancellation_token();
            tokio::select! {
                quit = running.waiting() => {
                    tracing::info!("MCP client gone: {quit:?}");
                    Ok(ExitCode::SUCCESS)
                }
                () = signalled() => {
                    token.cancel();
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Err(e) => Err(anyhow!("the MCP client did not start a session: {e}")),
    };
    // Answers already given are in the ledger before the process ends.
    gateway.shutdown(Duration::from_secs(3)).await;
    result
}

/// SIGINT or SIGTERM (a client that quits may send either).
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `switchyard mcp --url`: relays stdio to a running gateway's `/mcp`. Each line on stdin is
/// one JSON-RPC message, POSTed as it is; what comes back (JSON, or the `data:` of SSE events)
/// is written to stdout a message a line. The gateway serves `/mcp` statelessly, so nothing
/// but the negotiated protocol version is kept between messages.
async fn relay(url: &str, key: Option<&str>) -> Result<ExitCode> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    switchyard_core::upstream::install_crypto();
    let endpoint = format!("{}/mcp", url.trim_end_matches('/').trim_end_matches("/mcp"));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let out = Arc::new(tokio::sync::Mutex::new(tokio::io::stdout()));
    let version: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l.context("reading stdin")?,
            () = signalled() => None,
        };
        let Some(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}});
                write_line(&out, &err.to_string()).await;
                continue;
            }
        };
        let (client, endpoint, key, out, version) = (
            client.clone(),
            endpoint.clone(),
            key.map(str::to_owned),
            out.clone(),
            version.clone(),
        );
        // Calls may overlap (a long `ask` and a `lanes`): each is its own POST.
        tasks.spawn(async move {
            let id = message.get("id").cloned();
            let is_request = id.is_some() && message.get("method").is_some();
            let mut req = client
                .post(&endpoint)
                .header("accept", "application/json, text/event-stream")
                .json(&message);
            if let Some(k) = &key {
                req = req.bearer_auth(k);
            }
            let negotiated = version.lock().map(|v| v.clone()).unwrap_or_default();
            if let Some(v) = negotiated {
                req = req.header("mcp-protocol-version", v);
            }
            let failure = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let sse = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("text/event-stream"));
                    match resp.bytes().await {
                        Ok(body) => {
                            for m in relayed_messages(&body, sse) {
                                if let Some(v) = m["result"]["protocolVersion"].as_str()
                                    && let Ok(mut slot) = version.lock()
                                {
                                    *slot = Some(v.to_owned());
                                }
                                write_line(&out, &m.to_string()).await;
                            }
                            None
                        }
                        Err(e) => Some(format!("the answer from {endpoint} broke off: {e}")),
                    }
                }
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    // A JSON-RPC error the server wrote itself (400 for a bad message) goes back as it is.
                    match serde_json::from_str::<Value>(&body) {
                        Ok(v) if v.get("jsonrpc").is_some() => {
                            write_line(&out, &v.to_string()).await;
                            None
                        }
                        _ => Some(format!("{endpoint} answered HTTP {}: {}", status.as_u16(), body.trim())),
                    }
                }
                Err(e) => Some(format!("cannot reach {endpoint}: {e}")),
            };
            if let Some(msg) = failure {
                tracing::error!("{msg}");
                if is_request {
                    let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": msg}});
                    write_line(&out, &err.to_string()).await;
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    out.lock().await.flush().await.ok();
    Ok(ExitCode::SUCCESS)
}

/// The JSON-RPC messages in a `/mcp` answer: one JSON body, or the `data:` of SSE events.
fn relayed_messages(body: &[u8], sse: bool) -> Vec<Value> {
    if !sse {
        return serde_json::from_slice(body).into_iter().collect();
    }
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    decoder.push(body, &mut events);
    decoder.finish(&mut events);
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .collect()
}

async fn write_line(out: &tokio::sync::Mutex<tokio::io::Stdout>, line: &str) {
    use tokio::io::AsyncWriteExt;
    let mut out = out.lock().await;
    let _ = out.write_all(line.as_bytes()).await;
    let _ = out.write_all(b"\n").await;
    let _ = out.flush().await;
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use switchyard_core::config::{Env, from_str};

    fn server(yaml: &str) -> switchyard_core::config::ServerConfig {
        let text = format!("{yaml}\nproviders:\n  o: {{ preset: ollama }}\nlanes:\n  a: {{ provider: o, model: m }}\n");
        from_str(&text, "t.yaml", &Env::fixed([])).unwrap().server
    }

    #[test]
    fn allowed_hosts_default_to_loopback_and_a_specific_listen_address() {
        let loopback = ["localhost", "127.0.0.1", "::1"];
        assert_eq!(allowed_hosts(&server("server: { listen: 127.0.0.1:4000 }")), loopback);
        // All interfaces: no one name is known; the operator lists them.
        assert_eq!(
            allowed_hosts(&server("server: { listen: 0.0.0.0:4000, keys: [k] }")),
            loopback
        );
        assert_eq!(
            allowed_hosts(&server("server: { listen: 10.0.0.5:4000, keys: [k] }")),
            ["localhost", "127.0.0.1", "::1", "10.0.0.5"]
        );
        assert_eq!(
            allowed_hosts(&server("server: { mcp_allowed_hosts: [gw.lan] }")),
            ["gw.lan"]
        );
        assert!(allowed_hosts(&server("server: { mcp_allowed_hosts: [\"*\"] }")).is_empty());
        assert!(http_config(&from_str(
            "server: { mcp_allowed_hosts: [\"*\"] }\nproviders:\n  o: { preset: ollama }\nlanes:\n  a: { provider: o, model: m }\n",
            "t.yaml",
            &Env::fixed([])
        )
        .unwrap())
        .allowed_hosts
        .is_empty());
    }
}
