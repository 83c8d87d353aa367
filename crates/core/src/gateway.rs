//! The executor: plan a request, try its lanes in order, classify each failure, fall back
//! before the first byte reaches the client, relay the answer, and write the ledger.
//!
//! What must stay true:
//! - Fallback happens only before the first byte. Once a stream has been handed to the
//!   client, an upstream failure ends it with an error event and is recorded, never retried.
//! - Every request is recorded exactly once: answered, refused, failed, or cut off by the
//!   client (the relay's `Drop` records what was streamed so far).
//! - A caller's mistake (`bad_request`) is returned as is and never tried elsewhere.

use crate::catalog::Price;
use crate::classify::{ErrorClass, UpstreamError};
use crate::clock::{self, Clock};
use crate::config::{Config, LaneConfig, ProviderConfig};
use crate::error::GatewayError;
use crate::health::{Health, Transition};
use crate::ledger::{AttemptRecord, Ledger, RequestRecord};
use crate::local::{self, EngineFactory, LocalEngine};
use crate::observe::Observer;
use crate::quota::{self, BudgetStatus, Quota, Reservation};
use crate::router::{self, Hints};
use crate::shared::Shared;
use crate::upstream::{Started, Upstream, UpstreamStream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;
use switchyard_protocol::Dialect;
use switchyard_protocol::anthropic::{self, PassthroughProbe, StreamFromChat, StreamToChat};
use switchyard_protocol::openai::{ChatRequest, ChunkProbe, ErrorBody, StreamOptions, Usage};
use switchyard_protocol::sse::{SseEvent, encode_data};
use tokio::time::Instant;

/// Who is asking and how, beyond the body.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub hints: Hints,
    /// Short hash of the caller's key.
    pub caller: Option<String>,
    /// The dialect the client speaks: its answer (and errors in a stream) come in it.
    pub dialect: Dialect,
    /// The client's own body, when it spoke Anthropic. An Anthropic lane gets this body (with
    /// its model name and limits) instead of a translation, so nothing is lost on the way:
    /// signed thinking, cache_control, context_management, server tools.
    pub native: Option<Arc<Value>>,
    /// Headers passed on with the native body (`anthropic-beta`).
    pub passthrough_headers: HeaderMap,
    /// Recorded in the ledger instead of the dialect (`cli` for `brain` in-process).
    pub origin: Option<&'static str>,
}

/// What `count_tokens` found.
#[derive(Debug, Clone)]
pub struct Counted {
    pub route: String,
    /// The lane that would answer first, and whether it counted exactly (an Anthropic lane
    /// asked with the caller's own body) or this is the gateway's estimate.
    pub lane: Option<String>,
    pub exact: bool,
    pub input_tokens: u64,
}

pub struct Answer {
    pub route: String,
    pub lane: String,
    /// `lane:outcome,…` for `x-switchyard-attempts`.
    pub attempts: String,
    pub body: AnswerBody,
}

pub enum AnswerBody {
    /// A plain answer in the client's dialect (as the upstream sent it when the dialects
    /// match).
    Json(Bytes),
    /// SSE bytes in the client's dialect, ready to send.
    Stream(BoxStream<'static, Result<Bytes, Infallible>>),
}

/// A request that got no answer.
#[derive(Debug)]
pub struct Refusal {
    pub route: Option<String>,
    pub attempts: String,
    pub error: GatewayError,
}

pub struct Gateway {
    config: Arc<Config>,
    backends: HashMap<String, Backend>,
    health: Arc<Health>,
    quota: Arc<Quota>,
    ledger: Ledger,
    observer: Arc<Observer>,
    /// Redis, when replicas share quota counters, parks and open breakers.
    shared: Option<Arc<Shared>>,
    started: std::time::Instant,
}

/// One lane as `switchyard status` and `/api/status` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LaneStatus {
    pub lane: String,
    pub provider: String,
    pub model: String,
    pub local: bool,
    pub premium: bool,
    /// `up`, `down` (breaker open), `disabled`, or `limited` (a budget is spent or cooling).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    pub budgets: Vec<BudgetStatus>,
}

/// Every lane of `config` with its budgets; with `health`, whether its breaker is open (without
/// it, as read from the ledger while no gateway runs, health is not known).
pub fn lane_status(config: &Config, quota: &Quota, health: Option<&Health>) -> Vec<LaneStatus> {
    config
        .lanes
        .values()
        .map(|l| {
            let provider = config.providers.get(&l.provider);
            let budgets = quota.status(&l.name);
            let blocked = budgets.iter().find_map(|b| b.blocked.clone());
            let (state, why) = if let Some(d) = provider.and_then(|p| p.disabled.clone()) {
                ("disabled", Some(d))
            } else if health.is_some_and(|h| h.is_open(&l.name)) {
                (
                    "down",
                    Some("breaker open: failing; probed in the background".to_owned()),
                )
            } else if let Some(b) = blocked {
                ("limited", Some(b.reason))
            } else if health.is_none() {
                ("unknown", None)
            } else {
                ("up", None)
            };
            LaneStatus {
                lane: l.name.clone(),
                provider: l.provider.clone(),
                model: l.model.clone(),
                local: l.local,
                premium: l.premium,
                state,
                why,
                budgets,
            }
        })
        .collect()
}

/// How a provider is reached.
#[derive(Clone)]
enum Backend {
    Http(Arc<Upstream>),
    Local(Arc<dyn LocalEngine>),
}

impl Backend {
    async fn probe(&self) -> bool {
        match self {
            Backend::Http(up) => up.probe().await,
            // An in-process engine that failed is retried by the next request after the
            // cool-down; there is nothing to probe over a network.
            Backend::Local(_) => true,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn attempts_header(attempts: &[AttemptRecord]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}:{}", a.lane, a.outcome))
        .collect::<Vec<_>>()
        .join(",")
}

impl Gateway {
    /// Builds the HTTP clients and local engines, and opens the ledger. Without an engine
    /// factory, `embedded` providers are disabled (their lanes are skipped, saying why).
    pub async fn new(config: Config, engines: Option<EngineFactory>) -> Result<Arc<Gateway>, String> {
        Self::build(config, engines, None).await
    }

    /// A gateway for a changed config that takes over from this one what still applies: the
    /// loaded embedded models whose settings did not change, the ledger, the live counters of
    /// unchanged quota budgets (new or changed ones are rebuilt from the ledger), the breaker
    /// state of lanes that still point at the same model, and the metrics. Requests in flight
    /// finish on this gateway.
    pub async fn reload(&self, config: Config, engines: Option<EngineFactory>) -> Result<Arc<Gateway>, String> {
        Self::build(config, engines, Some(self)).await
    }

    async fn build(
        mut config: Config,
        engines: Option<EngineFactory>,
        prev: Option<&Gateway>,
    ) -> Result<Arc<Gateway>, String> {
        let mut backends = HashMap::new();
        for p in config.providers.values_mut().filter(|p| p.disabled.is_none()) {
            let loaded = prev.and_then(|g| {
                let old = g.config.providers.get(&p.name)?;
                match g.backends.get(&p.name)? {
                    Backend::Local(e) if p.embedded.is_some() && old.embedded == p.embedded => {
                        Some(Backend::Local(e.clone()))
                    }
                    _ => None,
                }
            });
            let backend = match (loaded, &p.embedded, &engines) {
                (Some(b), _, _) => b,
                (None, None, _) => Backend::Http(Arc::new(Upstream::new(p.clone())?)),
                (None, Some(_), Some(factory)) => match factory(p) {
                    Ok(engine) => Backend::Local(engine),
                    Err(e) => {
                        tracing::warn!(provider = %p.name, "embedded engine unavailable: {e}");
                        p.disabled = Some(e);
                        continue;
                    }
                },
                (None, Some(_), None) => {
                    p.disabled = Some("this build has no embedded engine".into());
                    continue;
                }
            };
            backends.insert(p.name.clone(), backend);
        }
        let url = config.storage.shared.as_ref().map(|u| u.expose_secret().to_owned());
        let shared = match prev {
            Some(g) if g.config.storage.shared.as_ref().map(|u| u.expose_secret()) == url.as_deref() => {
                g.shared.clone()
            }
            _ => url.as_deref().map(Shared::new).transpose()?,
        };
        let same_ledger = |g: &Gateway| {
            g.config.storage.ledger == config.storage.ledger
                && g.config.storage.postgres.as_ref().map(|u| u.expose_secret())
                    == config.storage.postgres.as_ref().map(|u| u.expose_secret())
        };
        let (ledger, quota) = match prev {
            Some(g) if same_ledger(g) => {
                // Everything answered so far must be in the file the new counts are read from.
                g.ledger.flush().await;
                (
                    g.ledger.clone(),
                    Quota::reload(&config, &g.quota, &g.ledger.reader()).await?,
                )
            }
            _ => {
                let ledger = Ledger::open_storage(&config.storage).await?;
                let quota = Quota::from_ledger(&config, Clock::system(), &ledger.reader()).await?;
                (ledger, quota)
            }
        };
        let quota = Arc::new(quota.with_shared(shared.clone()));
        let observer = Arc::new(Observer::new(&config, quota.clone(), prev.map(|g| &*g.observer)));
        let hook = {
            let (observer, shared) = (observer.clone(), shared.clone());
            let hold = config.health.max_cooldown;
            Box::new(move |lane: &str, t: Transition, why: &str| {
                observer.transition(lane, t, why);
                if let Some(s) = &shared {
                    s.lane_state(lane, t == Transition::Down, hold);
                }
            })
        };
        let health = Arc::new(Health::new(config.health, config.lanes.keys()).with_hook(hook));
        if let Some(g) = prev {
            let same = config.lanes.values().filter(|l| {
                g.config.lanes.get(&l.name).is_some_and(|o| {
                    o.provider == l.provider
                        && o.model == l.model
                        && g.config.providers.get(&o.provider).map(|p| &p.base_url)
                            == config.providers.get(&l.provider).map(|p| &p.base_url)
                })
            });
            health.inherit(&g.health, same.map(|l| l.name.as_str()));
        }
        let gw = Arc::new(Gateway {
            config: Arc::new(config),
            backends,
            health,
            quota,
            ledger,
            observer,
            shared,
            started: prev.map_or_else(std::time::Instant::now, |g| g.started),
        });
        spawn_prober(Arc::downgrade(&gw));
        Ok(gw)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Redis, when replicas share state: its URL (without password) and whether it answers.
    pub fn shared_status(&self) -> Option<(String, bool)> {
        self.shared.as_ref().map(|s| (s.shown_url.clone(), s.is_up()))
    }

    /// Every lane: healthy or not, its budgets, what is used and left, and when they reset.
    pub fn status(&self) -> Vec<LaneStatus> {
        lane_status(&self.config, &self.quota, Some(&self.health))
    }

    /// Counters, histograms and gauges in Prometheus' text format (`GET /metrics`).
    pub fn metrics(&self) -> String {
        let mut text = self
            .observer
            .metrics
            .render(&self.status(), self.started.elapsed().as_secs_f64());
        if let Some(s) = &self.shared {
            text.push_str(
                "# HELP switchyard_shared_up 1 while the shared state (Redis) answers; 0: quotas are counted by this replica alone.\n# TYPE switchyard_shared_up gauge\n",
            );
            text.push_str(&format!("switchyard_shared_up {}\n", u8::from(s.is_up())));
        }
        text
    }

    /// Records a finished request: metrics and notifications now, the ledger in the background.
    fn record(&self, rec: RequestRecord) {
        self.observer.finished(&rec);
        self.ledger.record(rec);
    }

    /// Before the process ends: the ledger written, held-back notifications sent and
    /// deliveries finished (waiting at most `within` for those).
    pub async fn shutdown(&self, within: Duration) {
        self.ledger.close().await;
        self.observer.flush(within).await;
    }

    /// Waits until every request recorded so far is in the ledger.
    pub async fn flush(&self) {
        self.ledger.flush().await;
    }

    /// Answers one chat request.
    pub async fn chat(&self, mut req: ChatRequest, call: Call) -> Result<Answer, Refusal> {
        let started = Instant::now();
        let stream = req.is_stream();
        let client_wants_usage = req.wants_stream_usage();
        let mut rec = RequestRecord {
            id: uuid::Uuid::now_v7().to_string(),
            ts_ms: clock::wall_now_ms(),
            caller: call.caller.clone(),
            dialect: call.origin.unwrap_or(call.dialect.as_str()).to_owned(),
            model: shorten(&req.model, 200),
            stream,
            ..Default::default()
        };
        let plan = match router::plan(&self.config, &req, &call.hints) {
            Ok(p) => p,
            Err(error) => {
                rec.status = "error".into();
                rec.error_class = Some(error.code());
                rec.http_status = error.status();
                rec.duration_ms = ms(started.elapsed());
                self.record(rec);
                return Err(Refusal {
                    route: None,
                    attempts: String::new(),
                    error,
                });
            }
        };
        rec.route = Some(plan.route.clone());
        if stream {
            // Always ask for usage so the ledger has it; the relay drops the usage chunk again
            // when the client did not ask for it.
            req.stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        }

        let orig = Orig {
            max_tokens: req.max_tokens,
            max_completion_tokens: req.max_completion_tokens,
            reasoning: req.reasoning.clone(),
            had_effort: req.extra.contains_key("reasoning_effort"),
        };
        let mut summary = Vec::new();
        let mut tried_any = false;
        let mut only_rate_limits = true;
        // The earliest moment a lane skipped for its quota frees up (for Retry-After).
        let mut frees_at: Option<i64> = None;
        let input_estimate = req.estimate_input_tokens();
        // Every lane was ruled out for good (not allowed, or unable to take this request):
        // asking again will not help, so the refusal must not invite retries.
        let mut permanent = true;
        for lane_name in &plan.lanes {
            let (Some(lane), Some(provider)) = (
                self.config.lanes.get(lane_name),
                self.config
                    .lanes
                    .get(lane_name)
                    .and_then(|l| self.config.providers.get(&l.provider)),
            ) else {
                continue; // validated config: cannot happen
            };
            let mut skip = self.skip_reason(&plan, lane, provider);
            if skip.is_none()
                && let Some(window) = lane.context_window
                && input_estimate > window
            {
                skip = Some((
                    "context_too_small",
                    format!(
                        "lane `{lane_name}` skipped: the prompt (~{input_estimate} tokens) does not fit its {window}-token context window"
                    ),
                ));
            }
            let up_dialect = match self.backends.get(&provider.name) {
                Some(Backend::Http(up)) => up.dialect(),
                _ => Dialect::OpenAi,
            };
            let mut reservation = None;
            if skip.is_none() {
                shape_for_lane(&mut req, &orig, lane, up_dialect);
                let output = req
                    .max_tokens
                    .or(req.max_completion_tokens)
                    .or(lane.max_output_tokens)
                    .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
                match self
                    .quota
                    .reserve_shared(lane_name, input_estimate.saturating_add(output), input_estimate)
                    .await
                {
                    Ok(r) => reservation = Some(r),
                    Err((outcome, why, until)) => {
                        frees_at = Some(frees_at.map_or(until, |f| f.min(until)));
                        if matches!(outcome, "quota" | "spend_cap") {
                            self.observer.exhausted(lane_name, &why);
                        }
                        skip = Some((outcome, format!("lane `{lane_name}` skipped: {why}")));
                    }
                }
            }
            if let Some((outcome, why)) = skip {
                if !matches!(outcome, "cooling_down" | "quota" | "spend_cap") {
                    only_rate_limits = false;
                }
                if !matches!(
                    outcome,
                    "disabled" | "not_local" | "premium_not_allowed" | "context_too_small"
                ) {
                    permanent = false;
                }
                rec.attempts.push(AttemptRecord {
                    lane: lane_name.clone(),
                    provider: provider.name.clone(),
                    outcome: outcome.to_owned(),
                    detail: Some(why.clone()),
                    ..Default::default()
                });
                summary.push(why);
                continue;
            }
            let Some(reservation) = reservation else {
                continue; // a skip above: cannot happen
            };
            let Some(backend) = self.backends.get(&provider.name) else {
                // A provider without a backend is disabled, and skipped above.
                self.quota.settle(reservation, false, None, 0.0);
                continue;
            };
            tried_any = true;
            let t0 = Instant::now();
            let sent = match backend {
                Backend::Http(up) => match lane_body(&req, lane, up_dialect, &call) {
                    Ok((body, headers)) => up.send(body, stream, &headers).await,
                    // Could not be put in the lane's dialect: it never left the gateway.
                    Err(e) => Err(UpstreamError {
                        class: ErrorClass::Unsupported,
                        ..e
                    }),
                },
                Backend::Local(engine) => {
                    local::send(engine.as_ref(), &req, stream, provider.timeouts.first_byte).await
                }
            };
            let sent = match sent {
                Ok(mut a) => {
                    self.learn(lane_name, &std::mem::take(a.observed_mut()));
                    translate_complete(a, up_dialect, call.dialect)
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(answer) => {
                    self.health.success(lane_name);
                    let ttft = ms(t0.elapsed());
                    rec.attempts.push(AttemptRecord {
                        lane: lane_name.clone(),
                        provider: provider.name.clone(),
                        outcome: "ok".into(),
                        http_status: Some(200),
                        ttft_ms: Some(ttft),
                        duration_ms: ttft,
                        detail: None,
                    });
                    rec.lane = Some(lane_name.clone());
                    rec.local = lane.local;
                    rec.http_status = 200;
                    rec.ttft_ms = Some(ms(started.elapsed()));
                    let attempts = attempts_header(&rec.attempts);
                    if rec.attempts.len() > 1 {
                        tracing::info!(route = %plan.route, lane = %lane_name, %attempts, "answered after fallback");
                    }
                    let body = match answer {
                        Started::Complete { body, usage, .. } => {
                            rec.status = "ok".into();
                            set_usage(&mut rec, usage);
                            rec.cost_usd = cost(lane.price, usage);
                            self.quota.settle(
                                reservation,
                                true,
                                usage.map(|u| u.prompt_tokens.saturating_add(u.completion_tokens)),
                                rec.cost_usd.unwrap_or(0.0),
                            );
                            rec.duration_ms = ms(started.elapsed());
                            // The client gets the answer once its record survives a crash (in the
                            // ledger's journal, or committed where there is none).
                            self.observer.finished(&rec);
                            if let Some(committed) = self.ledger.record_durable(rec) {
                                let _ = tokio::time::timeout(crate::ledger::DURABLE_WAIT, committed).await;
                            }
                            AnswerBody::Json(body)
                        }
                        Started::Stream(s) => AnswerBody::Stream(relay(Relay {
                            pipe: Pipe::new(up_dialect, call.dialect, &lane.model),
                            upstream: s,
                            rec: Some(rec),
                            ledger: self.ledger.clone(),
                            observer: self.observer.clone(),
                            health: self.health.clone(),
                            quota: self.quota.clone(),
                            reservation: Some(reservation),
                            price: lane.price,
                            started,
                            idle: provider.timeouts.idle,
                            client_wants_usage,
                            usage: None,
                            failure: None,
                            out: VecDeque::new(),
                            done: false,
                            done_sent: false,
                            finished: false,
                        })),
                    };
                    return Ok(Answer {
                        route: plan.route,
                        lane: lane_name.clone(),
                        attempts,
                        body,
                    });
                }
                Err(mut e) => {
                    self.learn(lane_name, &std::mem::take(&mut e.observed));
                    // A refused connection and a request the lane cannot take never reached the
                    // provider; a timed-out plain request may have been generated in full (its
                    // estimate stands); other failures used no tokens.
                    let reached = !matches!(e.class, ErrorClass::Connect | ErrorClass::Unsupported);
                    let tokens = (e.class != ErrorClass::Timeout).then_some(0);
                    self.quota.settle(reservation, reached, tokens, 0.0);
                    if let Some(until) = self.note_failure(lane_name, &e) {
                        frees_at = Some(frees_at.map_or(until, |f| f.min(until)));
                    }
                    rec.attempts.push(AttemptRecord {
                        lane: lane_name.clone(),
                        provider: provider.name.clone(),
                        outcome: e.class.as_str().to_owned(),
                        http_status: e.status,
                        ttft_ms: None,
                        duration_ms: ms(t0.elapsed()),
                        detail: Some(shorten(&e.message, 300)),
                    });
                    if !matches!(e.class, ErrorClass::RateLimited | ErrorClass::QuotaExhausted) {
                        only_rate_limits = false;
                    }
                    // Only the request's own shape: a provider's bad key or missing model is the
                    // operator's problem, not the caller's, and stays a 503.
                    if !matches!(e.class, ErrorClass::Unsupported | ErrorClass::ContextOverflow) {
                        permanent = false;
                    }
                    if !e.class.falls_back() {
                        let error = GatewayError::UpstreamRejected {
                            lane: lane_name.clone(),
                            status: e.status.unwrap_or(400),
                            message: e.message,
                            code: e.code,
                        };
                        return Err(self.refuse(
                            rec,
                            started,
                            Some(plan.route),
                            error,
                            ErrorClass::BadRequest.as_str(),
                        ));
                    }
                    let status = e.status.map(|s| format!("HTTP {s}, ")).unwrap_or_default();
                    summary.push(format!(
                        "{lane_name}: {} ({status}{})",
                        e.class.as_str(),
                        shorten(&e.message, 200)
                    ));
                    tracing::info!(route = %plan.route, lane = %lane_name, class = e.class.as_str(), "lane failed, trying the next");
                }
            }
        }
        let mut text = if summary.is_empty() {
            "the route has no lanes".to_owned()
        } else {
            summary.join("; ")
        };
        if !tried_any {
            text.push_str(". Every lane was skipped before trying it");
        }
        let retry_after_secs = frees_at.map(|t| ((t - self.quota.now_ms()).max(0) as u64).div_ceil(1000).max(1));
        let error = GatewayError::NoLaneAvailable {
            route: plan.route.clone(),
            summary: text,
            rate_limited: !plan.lanes.is_empty() && only_rate_limits && (tried_any || frees_at.is_some()),
            permanent: permanent && !plan.lanes.is_empty(),
            retry_after_secs,
        };
        Err(self.refuse(rec, started, Some(plan.route), error, "no_lane_available"))
    }

    /// Why a lane of the plan is not tried, if it is not: `(outcome, sentence)`.
    fn skip_reason(
        &self,
        plan: &router::Plan,
        lane: &LaneConfig,
        provider: &ProviderConfig,
    ) -> Option<(&'static str, String)> {
        let lane_name = &lane.name;
        if let Some(why) = &provider.disabled {
            Some(("disabled", format!("provider `{}` is disabled ({why})", provider.name)))
        } else if plan.local_only && !lane.local {
            Some((
                "not_local",
                format!("lane `{lane_name}` skipped: not local, and only local lanes were allowed"),
            ))
        } else if lane.premium && !plan.premium {
            Some((
                "premium_not_allowed",
                format!("premium lane `{lane_name}` skipped: not requested (send x-switchyard-premium: allow)"),
            ))
        } else if let Some(s) = self.health.check(lane_name) {
            Some((
                s.as_str(),
                format!("lane `{lane_name}` skipped: {}", s.as_str().replace('_', " ")),
            ))
        } else if self.shared.as_ref().is_some_and(|s| s.is_down(lane_name)) {
            Some((
                "breaker_open",
                format!("lane `{lane_name}` skipped: its breaker is open on another replica"),
            ))
        } else {
            None
        }
    }

    /// Counts the input tokens of a request as its route would send it: exactly, by asking
    /// the Anthropic lane that would answer first (with the caller's own body), or else by the
    /// gateway's estimate (about four characters a token).
    pub async fn count_tokens(&self, req: &ChatRequest, call: &Call) -> Result<Counted, GatewayError> {
        let plan = router::plan(&self.config, req, &call.hints)?;
        let estimate = req.estimate_input_tokens();
        for lane_name in &plan.lanes {
            let Some(lane) = self.config.lanes.get(lane_name) else {
                continue;
            };
            let Some(provider) = self.config.providers.get(&lane.provider) else {
                continue;
            };
            if self.skip_reason(&plan, lane, provider).is_some() {
                continue;
            }
            let mut counted = Counted {
                route: plan.route.clone(),
                lane: Some(lane_name.clone()),
                exact: false,
                input_tokens: estimate,
            };
            if let (Some(Backend::Http(up)), Some(native)) = (self.backends.get(&provider.name), &call.native)
                && up.dialect() == Dialect::Anthropic
            {
                let mut body = (**native).clone();
                if let Some(o) = body.as_object_mut() {
                    o.insert("model".into(), Value::String(lane.model.clone()));
                    for k in [
                        "max_tokens",
                        "stream",
                        "stop_sequences",
                        "temperature",
                        "top_p",
                        "top_k",
                        "metadata",
                    ] {
                        o.remove(k);
                    }
                }
                match up
                    .count_tokens(body.to_string().into_bytes(), &call.passthrough_headers)
                    .await
                {
                    Ok(n) => {
                        counted.exact = true;
                        counted.input_tokens = n;
                    }
                    Err(e) => {
                        tracing::info!(lane = %lane_name, class = e.class.as_str(), "count_tokens failed upstream; estimating");
                    }
                }
            }
            return Ok(counted);
        }
        Ok(Counted {
            route: plan.route,
            lane: None,
            exact: false,
            input_tokens: estimate,
        })
    }

    fn refuse(
        &self,
        mut rec: RequestRecord,
        started: Instant,
        route: Option<String>,
        error: GatewayError,
        class: &str,
    ) -> Refusal {
        rec.status = "error".into();
        rec.error_class = Some(class.to_owned());
        rec.http_status = error.status();
        rec.duration_ms = ms(started.elapsed());
        let attempts = attempts_header(&rec.attempts);
        self.record(rec);
        Refusal { route, attempts, error }
    }

    /// Counts a failure against the lane's health, and parks it for a 429. Returns when a
    /// parked lane frees up.
    fn note_failure(&self, lane: &str, e: &UpstreamError) -> Option<i64> {
        if e.class.counts_against_health() {
            let status = e.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            self.health.failure(
                lane,
                &format!("{}{status}: {}", e.class.as_str(), shorten(&e.message, 200)),
            );
        }
        let now = self.quota.now_ms();
        let wait_ms = e.retry_after.map(|d| d.as_millis() as i64);
        let status = e.status.map(|s| format!("HTTP {s}: ")).unwrap_or_default();
        let parked = match e.class {
            // A short window: wait what the provider asked, then try again.
            ErrorClass::RateLimited => self.quota.park(
                lane,
                now + wait_ms.unwrap_or(quota::DEFAULT_COOLDOWN_MS),
                "cooling_down",
                format!("rate limited ({status}{})", shorten(&e.message, 160)),
            ),
            // A daily or monthly budget: parked until it resets.
            ErrorClass::QuotaExhausted => {
                let until = wait_ms
                    .filter(|w| *w > 0)
                    .map_or_else(|| self.quota.next_reset(lane), |w| now + w);
                tracing::warn!(lane, until = %clock::format_utc(until), "free quota spent: the lane is parked until it resets");
                self.observer.exhausted(
                    lane,
                    &format!(
                        "the provider says the quota is spent ({status}{}); parked until {}",
                        shorten(&e.message, 160),
                        clock::format_utc(until)
                    ),
                );
                self.quota.park(
                    lane,
                    until,
                    "quota",
                    format!("quota spent ({status}{})", shorten(&e.message, 160)),
                )
            }
            _ => None,
        };
        let until = parked.as_ref().map(|p| p.park.until_ms);
        // Only parks that outlast a restart are worth a write.
        if let Some(p) = parked.filter(|p| p.park.until_ms - now > 60_000) {
            self.ledger.park(p);
        }
        until
    }

    /// Takes in the budgets a provider reported in its headers.
    fn learn(&self, lane: &str, observed: &[crate::ratelimit::Observed]) {
        if observed.is_empty() {
            return;
        }
        for p in self.quota.learn(lane, observed) {
            tracing::info!(lane, budget = %p.budget, until = %clock::format_utc(p.park.until_ms), "the provider reports a spent budget: parked");
            self.observer.exhausted(
                lane,
                &format!(
                    "the provider reports budget `{}` spent ({}); parked until {}",
                    p.budget,
                    p.park.reason,
                    clock::format_utc(p.park.until_ms)
                ),
            );
            self.ledger.park(p);
        }
    }
}

/// The request's own values, before a lane shaped it.
struct Orig {
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    reasoning: Option<switchyard_protocol::openai::Reasoning>,
    had_effort: bool,
}

/// Shapes the canonical request for one lane: its model name, `max_tokens` within what the
/// lane can write, and the reasoning ask kept only for lanes that can think (as
/// `reasoning_effort` for OpenAI-compatible ones). Always starts from the request's own values,
/// so one lane's limits never leak into the next lane's attempt.
fn shape_for_lane(req: &mut ChatRequest, orig: &Orig, lane: &LaneConfig, up: Dialect) {
    req.model.clone_from(&lane.model);
    let clamp = |n: Option<u64>| match (n, lane.max_output_tokens) {
        (Some(n), Some(max)) => Some(n.min(max)),
        (n, _) => n,
    };
    req.max_tokens = clamp(orig.max_tokens);
    req.max_completion_tokens = clamp(orig.max_completion_tokens);
    req.reasoning = if lane.thinking { orig.reasoning.clone() } else { None };
    if !orig.had_effort {
        req.extra.remove("reasoning_effort");
        if up == Dialect::OpenAi
            && let Some(r) = &req.reasoning
        {
            req.extra
                .insert("reasoning_effort".into(), Value::String(r.effort.clone()));
        }
    }
}

/// The body (in the lane's dialect) and extra headers for an HTTP lane. An Anthropic client
/// reaching an Anthropic lane sends its own body: only the model, `max_tokens` (clamped) and a
/// thinking budget that no longer fits are changed.
fn lane_body(
    req: &ChatRequest,
    lane: &LaneConfig,
    up: Dialect,
    call: &Call,
) -> Result<(Vec<u8>, HeaderMap), UpstreamError> {
    let encode_err = |e: serde_json::Error| {
        UpstreamError::transport(ErrorClass::BadResponse, format!("request could not be encoded: {e}"))
    };
    match (up, &call.native) {
        (Dialect::OpenAi, _) => Ok((serde_json::to_vec(req).map_err(encode_err)?, HeaderMap::new())),
        (Dialect::Anthropic, Some(native)) => {
            let mut body = (**native).clone();
            if let Some(o) = body.as_object_mut() {
                fit_native_body(o, lane);
            }
            Ok((
                serde_json::to_vec(&body).map_err(encode_err)?,
                call.passthrough_headers.clone(),
            ))
        }
        (Dialect::Anthropic, None) => {
            let style = lane.thinking.then(|| anthropic::thinking_style(&lane.model));
            let body = anthropic::from_chat(req, lane.max_output_tokens.unwrap_or(4096), style)
                .map_err(|e| UpstreamError::transport(ErrorClass::Unsupported, e))?;
            Ok((serde_json::to_vec(&body).map_err(encode_err)?, HeaderMap::new()))
        }
    }
}

/// Fits an Anthropic client's own body to the lane it is passed to: the lane's model name,
/// `max_tokens` within the model's limit, and thinking as that model takes it. The caller
/// built the body for the model *it* named (Claude Code asks `claude-opus-4-8` for adaptive
/// thinking); an older model gets a budget instead, a lane without thinking gets none, and a
/// tool loop begun without thinking (by another lane) may not turn it on.
fn fit_native_body(o: &mut serde_json::Map<String, Value>, lane: &LaneConfig) {
    o.insert("model".into(), Value::String(lane.model.clone()));
    let asked = o.get("max_tokens").and_then(Value::as_u64);
    let max = match (asked, lane.max_output_tokens) {
        (Some(a), Some(m)) => Some(a.min(m)),
        (a, _) => a,
    };
    if let Some(m) = max {
        o.insert("max_tokens".into(), m.into());
    }
    let Some(thinking) = o.get("thinking").cloned() else {
        return;
    };
    let kind = thinking
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let loop_ok = o
        .get("messages")
        .and_then(Value::as_array)
        .is_none_or(|m| anthropic::thinking_allowed(m));
    let mut keep = lane.thinking && loop_ok && kind != "disabled";
    if keep && anthropic::thinking_style(&lane.model) == anthropic::ThinkingStyle::Budget {
        let effort = o
            .get("output_config")
            .and_then(|c| c.get("effort"))
            .and_then(Value::as_str)
            .unwrap_or("medium")
            .to_owned();
        let wanted = thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| {
                anthropic::budget_for(&switchyard_protocol::openai::Reasoning {
                    effort: effort.clone(),
                    budget_tokens: None,
                })
            });
        let budget = wanted.min(max.unwrap_or(u64::MAX).saturating_sub(1)).max(1024);
        if max.is_some_and(|m| budget >= m) {
            keep = false;
        } else {
            o.insert(
                "thinking".into(),
                serde_json::json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    if !keep {
        o.remove("thinking");
        // Edits that clear thinking blocks are refused without thinking.
        if let Some(edits) = o
            .get_mut("context_management")
            .and_then(|c| c.get_mut("edits"))
            .and_then(Value::as_array_mut)
        {
            edits.retain(|e| {
                !e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with("clear_thinking"))
            });
        }
    }
}

/// A whole answer in the client's dialect. A body that cannot be translated is not a valid
/// answer: the lane failed, and the next one may be tried.
fn translate_complete(a: Started, up: Dialect, client: Dialect) -> Result<Started, UpstreamError> {
    match a {
        Started::Complete { body, usage, observed } if up != client => {
            let out = match client {
                Dialect::Anthropic => anthropic::response_from_chat(&body),
                Dialect::OpenAi => anthropic::response_to_chat(&body, (clock::wall_now_ms() / 1000) as u64),
            }
            .map_err(|e| UpstreamError::transport(ErrorClass::BadResponse, e))?;
            Ok(Started::Complete {
                body: Bytes::from(out.to_string()),
                usage,
                observed,
            })
        }
        a => Ok(a),
    }
}

/// Output tokens assumed for a request that sets no `max_tokens`, for its quota reservation.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

/// What an answer cost on a paid lane; `None` when the lane has no price or no usage came.
fn cost(price: Option<Price>, usage: Option<Usage>) -> Option<f64> {
    let (p, u) = (price?, usage?);
    Some(p.cost(u.prompt_tokens, u.completion_tokens))
}

fn set_usage(rec: &mut RequestRecord, usage: Option<Usage>) {
    if let Some(u) = usage {
        rec.tokens_in = Some(u.prompt_tokens);
        rec.tokens_out = Some(u.completion_tokens);
    }
}

/// Probes lanes whose breaker is open, until the gateway is dropped.
fn spawn_prober(gw: Weak<Gateway>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let Some(gw) = gw.upgrade() else { return };
            if n.is_multiple_of(4)
                && let Some(shared) = gw.shared.clone()
            {
                // Which lanes other replicas found down; also how Redis coming back is seen.
                let lanes: Vec<String> = gw.config.lanes.keys().cloned().collect();
                tokio::spawn(async move { shared.poll(&lanes).await });
            }
            for lane in gw.health.due_for_probe() {
                let Some(up) = gw
                    .config
                    .lanes
                    .get(&lane)
                    .and_then(|l| gw.backends.get(&l.provider))
                    .cloned()
                else {
                    continue;
                };
                // Mark it as probed now so the next tick does not start a second probe.
                gw.health.probed(&lane, false);
                let health = gw.health.clone();
                tokio::spawn(async move {
                    if up.probe().await {
                        health.probed(&lane, true);
                    }
                });
            }
        }
    });
}

/// How a stream's events become the client's: unchanged, or translated between dialects.
enum Pipe {
    /// OpenAI in, OpenAI out.
    Same,
    /// OpenAI in (a local or OpenAI-compatible lane), Anthropic out.
    ToAnthropic(Box<StreamFromChat>),
    /// Anthropic in (an Anthropic lane), OpenAI out.
    ToOpenAi(Box<StreamToChat>),
    /// Anthropic in and out: passed through, read only for usage and errors.
    Passthrough(PassthroughProbe),
}

impl Pipe {
    fn new(up: Dialect, client: Dialect, model: &str) -> Pipe {
        match (up, client) {
            (Dialect::OpenAi, Dialect::OpenAi) => Pipe::Same,
            (Dialect::OpenAi, Dialect::Anthropic) => Pipe::ToAnthropic(Box::new(StreamFromChat::new(model))),
            (Dialect::Anthropic, Dialect::OpenAi) => {
                Pipe::ToOpenAi(Box::new(StreamToChat::new((clock::wall_now_ms() / 1000) as u64)))
            }
            (Dialect::Anthropic, Dialect::Anthropic) => Pipe::Passthrough(PassthroughProbe::default()),
        }
    }

    fn client(&self) -> Dialect {
        match self {
            Pipe::Same | Pipe::ToOpenAi(_) => Dialect::OpenAi,
            Pipe::ToAnthropic(_) | Pipe::Passthrough(_) => Dialect::Anthropic,
        }
    }
}

/// Relays an upstream stream to the client in its dialect, and records it when it ends.
struct Relay {
    pipe: Pipe,
    upstream: UpstreamStream,
    rec: Option<RequestRecord>,
    ledger: Ledger,
    observer: Arc<Observer>,
    health: Arc<Health>,
    quota: Arc<Quota>,
    reservation: Option<Reservation>,
    price: Option<Price>,
    started: Instant,
    idle: Duration,
    client_wants_usage: bool,
    usage: Option<Usage>,
    failure: Option<ErrorClass>,
    out: VecDeque<Bytes>,
    /// The upstream is finished (or failed): nothing more will be read.
    done: bool,
    /// The client has been sent the stream's proper end (`[DONE]`, `message_stop`).
    done_sent: bool,
    /// An OpenAI-dialect upstream sent a chunk with a `finish_reason`: the answer is whole even
    /// if `[DONE]` never comes.
    finished: bool,
}

fn relay(mut r: Relay) -> BoxStream<'static, Result<Bytes, Infallible>> {
    let first = std::mem::take(&mut r.upstream.first);
    let mut buf = Vec::new();
    for ev in &first {
        r.on_event(ev, &mut buf);
    }
    if !buf.is_empty() {
        r.out.push_back(Bytes::from(buf));
    }
    futures_util::stream::unfold(r, |mut r| async move {
        loop {
            if let Some(b) = r.out.pop_front() {
                if r.done && r.out.is_empty() {
                    // The stream's last bytes wait until its record survives a crash (journal or
                    // commit): a client that saw the whole answer finds it in the ledger.
                    if let Some(committed) = r.finish() {
                        let _ = tokio::time::timeout(crate::ledger::DURABLE_WAIT, committed).await;
                    }
                }
                return Some((Ok(b), r));
            }
            if r.done {
                let _ = r.finish();
                return None;
            }
            r.pull().await;
        }
    })
    .boxed()
}

impl Relay {
    /// Reads the next upstream chunk and queues what it yields for the client.
    async fn pull(&mut self) {
        let mut buf = Vec::new();
        let mut events = Vec::new();
        let mut ended = false;
        match tokio::time::timeout(self.idle, self.upstream.rest.next()).await {
            Ok(Some(Ok(chunk))) => self.upstream.decoder.push(&chunk, &mut events),
            Ok(Some(Err(e))) => {
                self.fail(
                    ErrorClass::StreamInterrupted,
                    &format!("the upstream stream broke: {e}"),
                    &mut buf,
                );
            }
            Ok(None) => {
                self.upstream.decoder.finish(&mut events);
                ended = true;
            }
            Err(_) => {
                let msg = format!("the upstream sent nothing for {:?} (idle timeout)", self.idle);
                self.fail(ErrorClass::Timeout, &msg, &mut buf);
            }
        }
        for ev in &events {
            if self.done {
                break;
            }
            self.on_event(ev, &mut buf);
        }
        if ended {
            self.done = true;
            if self.failure.is_none() && !self.done_sent {
                self.ended_without_terminator(&mut buf);
            }
        }
        if !buf.is_empty() {
            self.out.push_back(Bytes::from(buf));
        }
    }

    /// The upstream closed cleanly but never sent its stream's end marker.
    fn ended_without_terminator(&mut self, buf: &mut Vec<u8>) {
        match &mut self.pipe {
            // Without a finished choice the answer was cut short.
            Pipe::Same | Pipe::ToAnthropic(_) if !self.finished => {
                self.done = false;
                self.fail(
                    ErrorClass::StreamInterrupted,
                    "the upstream stream ended before its answer did (no finish_reason, no [DONE])",
                    buf,
                );
            }
            // Some OpenAI-compatible servers omit `[DONE]` after the last chunk; clients still
            // need it.
            Pipe::Same => {
                buf.extend_from_slice(b"data: [DONE]\n\n");
                self.done_sent = true;
            }
            Pipe::ToAnthropic(t) => {
                let mut evs = Vec::new();
                t.finish(&mut evs);
                for e in &evs {
                    e.encode(buf);
                }
                self.done_sent = true;
            }
            // Anthropic always ends with `message_stop`: without it the answer was cut short.
            Pipe::ToOpenAi(_) | Pipe::Passthrough(_) => {
                self.done = false;
                self.fail(
                    ErrorClass::StreamInterrupted,
                    "the upstream stream ended before `message_stop`",
                    buf,
                );
            }
        }
    }

    fn on_event(&mut self, ev: &SseEvent, buf: &mut Vec<u8>) {
        if self.done_sent {
            return;
        }
        match &mut self.pipe {
            Pipe::Same => self.openai_out(&ev.data, ev.event.as_deref(), buf),
            Pipe::ToOpenAi(t) => {
                let mut chunks = Vec::new();
                t.push(&ev.data, &mut chunks);
                let ended = t.is_done();
                for c in &chunks {
                    self.openai_out(c, None, buf);
                }
                // An `error` event ends the answer: stop reading (its chunk set `failure`).
                if ended {
                    self.done = true;
                }
            }
            Pipe::ToAnthropic(t) => {
                let mut evs = Vec::new();
                if ev.data.trim() == "[DONE]" {
                    t.finish(&mut evs);
                    self.done_sent = true;
                    self.done = true;
                } else {
                    if let Ok(p) = serde_json::from_str::<ChunkProbe>(&ev.data) {
                        if p.usage.is_some() {
                            self.usage = p.usage;
                        }
                        self.finished |= p.finished();
                        if p.error.is_some() {
                            self.failure = Some(ErrorClass::BadResponse);
                            self.done = true;
                        }
                    }
                    t.push(&ev.data, &mut evs);
                    if t.is_finished() && !self.done {
                        // The translator saw an error the probe did not: end it as failed.
                        self.failure.get_or_insert(ErrorClass::BadResponse);
                        self.done = true;
                    }
                }
                for e in &evs {
                    e.encode(buf);
                }
            }
            Pipe::Passthrough(p) => {
                p.observe(&ev.data);
                encode_data(buf, ev.event.as_deref(), &ev.data);
                if p.error.is_some() {
                    self.failure = Some(ErrorClass::BadResponse);
                    self.done = true;
                } else if p.stopped {
                    self.done_sent = true;
                    self.done = true;
                }
            }
        }
    }

    /// One OpenAI event for an OpenAI client: reads its usage, drops the usage-only chunk the
    /// client did not ask for, and notes the end.
    fn openai_out(&mut self, data: &str, event: Option<&str>, buf: &mut Vec<u8>) {
        if self.done_sent {
            return;
        }
        if data.trim() == "[DONE]" {
            buf.extend_from_slice(b"data: [DONE]\n\n");
            self.done_sent = true;
            self.done = true;
            return;
        }
        if let Ok(p) = serde_json::from_str::<ChunkProbe>(data) {
            if p.usage.is_some() {
                self.usage = p.usage;
            }
            self.finished |= p.finished();
            if p.error.is_some() {
                self.failure = Some(ErrorClass::BadResponse);
            }
            let usage_only = p.choices.as_ref().is_some_and(Vec::is_empty) && p.usage.is_some();
            if usage_only && !self.client_wants_usage {
                return;
            }
        }
        encode_data(buf, event, data);
    }

    fn fail(&mut self, class: ErrorClass, message: &str, buf: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let cause = format!("{}: {}", class.as_str(), shorten(message, 200));
        let message = format!("{message}; the answer is incomplete");
        match self.pipe.client() {
            Dialect::OpenAi => {
                let body = ErrorBody::new("server_error", class.as_str(), message, None);
                encode_data(buf, None, &body.to_json());
            }
            Dialect::Anthropic => {
                let kind = match class {
                    ErrorClass::Timeout => "timeout_error",
                    ErrorClass::Overloaded => "overloaded_error",
                    _ => "api_error",
                };
                if let Pipe::ToAnthropic(t) = &mut self.pipe {
                    let mut evs = Vec::new();
                    t.fail(kind, &message, &mut evs);
                    for e in &evs {
                        e.encode(buf);
                    }
                } else {
                    encode_data(
                        buf,
                        Some("error"),
                        &anthropic::error_body(kind, &message, Some(class.as_str())),
                    );
                }
            }
        }
        self.failure = Some(class);
        self.done = true;
        if let Some(lane) = self.rec.as_ref().and_then(|r| r.lane.clone())
            && class.counts_against_health()
        {
            self.health.failure(&lane, &cause);
        }
    }

    /// Records the request. Runs at the normal end, or from `Drop` when the client went away.
    fn finish(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let mut rec = self.rec.take()?;
        if let Pipe::Passthrough(p) = &self.pipe {
            self.usage = p.usage();
        }
        if self.done_sent
            && self.failure.is_none()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // After `[DONE]` the upstream normally just closes its body. Read that end off the
            // client's path, so the connection goes back to the pool instead of being dropped.
            let mut rest = std::mem::replace(&mut self.upstream.rest, futures_util::stream::empty().boxed());
            rt.spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), async { while rest.next().await.is_some() {} }).await;
            });
        }
        if let Some(class) = self.failure {
            rec.status = "error".into();
            rec.error_class = Some(class.as_str().to_owned());
        } else if self.done_sent {
            rec.status = "ok".into();
        } else {
            rec.status = "client_disconnected".into();
        }
        set_usage(&mut rec, self.usage);
        rec.cost_usd = cost(self.price, self.usage);
        if let Some(r) = self.reservation.take() {
            // The provider saw this request. Without usage (a broken stream) the estimate stands.
            let tokens = self.usage.map(|u| u.prompt_tokens.saturating_add(u.completion_tokens));
            self.quota.settle(r, true, tokens, rec.cost_usd.unwrap_or(0.0));
        }
        rec.duration_ms = ms(self.started.elapsed());
        self.observer.finished(&rec);
        self.ledger.record_durable(rec)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn lane(model: &str, thinking: bool, max: Option<u64>) -> LaneConfig {
        LaneConfig {
            name: "l".into(),
            provider: "p".into(),
            model: model.into(),
            local: false,
            premium: true,
            max_output_tokens: max,
            thinking,
            context_window: None,
            price: None,
            budgets: Vec::new(),
        }
    }

    fn fit(body: Value, lane: &LaneConfig) -> Value {
        let mut body = body;
        fit_native_body(body.as_object_mut().unwrap(), lane);
        body
    }

    #[test]
    fn a_native_body_is_fitted_to_its_lane() {
        let cc = json!({"model": "claude-opus-4-8", "max_tokens": 128000, "thinking": {"type": "adaptive"},
                        "output_config": {"effort": "low"},
                        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}, {"type": "clear_tool_uses_20250919"}]},
                        "messages": [{"role": "user", "content": "hi"}]});
        // A newer model keeps the caller's adaptive thinking.
        let b = fit(cc.clone(), &lane("claude-opus-4-8", true, Some(64000)));
        assert_eq!(
            (b["max_tokens"].clone(), b["thinking"].clone()),
            (json!(64000), json!({"type": "adaptive"}))
        );
        // An older one gets a budget for the effort asked.
        let b = fit(cc.clone(), &lane("claude-sonnet-4-5", true, Some(64000)));
        assert_eq!(b["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
        // A lane without thinking: no thinking, and no edits that need it.
        let b = fit(cc.clone(), &lane("claude-sonnet-4-5", false, None));
        assert!(b.get("thinking").is_none());
        assert_eq!(
            b["context_management"]["edits"],
            json!([{"type": "clear_tool_uses_20250919"}])
        );
        // A budget that no longer fits under max_tokens shrinks, or thinking goes.
        let mut e = cc.clone();
        e["thinking"] = json!({"type": "enabled", "budget_tokens": 10000});
        e["max_tokens"] = json!(5000);
        assert_eq!(
            fit(e.clone(), &lane("claude-sonnet-4-5", true, None))["thinking"]["budget_tokens"],
            4999
        );
        e["max_tokens"] = json!(1000);
        assert!(fit(e, &lane("claude-sonnet-4-5", true, None)).get("thinking").is_none());
        // A tool loop another lane began without thinking may not turn it on.
        let mut l = cc;
        l["messages"] = json!([{"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}]);
        assert!(fit(l, &lane("claude-opus-4-8", true, None)).get("thinking").is_none());
    }
}
