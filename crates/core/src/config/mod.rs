//! Configuration: one YAML file, read into [`raw`] structs, then checked and resolved into a
//! [`Config`] that the rest of the gateway uses. Nothing else ever sees the raw form.
//!
//! What must stay true: every refusal names the file, line and column and says what would be
//! valid; a missing `${VAR}` for a provider disables that provider with a warning instead of
//! stopping the gateway.

pub mod raw;
mod values;

pub use values::{Env, glob_match, parse_duration, parse_size};

use crate::catalog::{self, Limits, Per, Price, Reset};
use indexmap::IndexMap;
use raw::{RawConfig, RawTimeouts, S};
use secrecy::SecretString;
use serde_saphyr::Location;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
pub const DEFAULT_MAX_BODY: usize = 32 << 20;

/// The validated, resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, when there was one.
    pub source: Option<PathBuf>,
    pub server: ServerConfig,
    pub providers: IndexMap<String, ProviderConfig>,
    pub lanes: IndexMap<String, LaneConfig>,
    pub routes: IndexMap<String, RouteConfig>,
    pub aliases: Vec<Alias>,
    pub health: HealthConfig,
    pub storage: StorageConfig,
    /// Where events are sent (`notify:`); targets whose URL uses an unset variable are left out
    /// with a warning.
    pub notify: Vec<NotifyConfig>,
    /// Every quota budget a lane draws on, by key (`groq/llama-3.3-70b-versatile`,
    /// `openrouter`, `lane:NAME`, `spend:PROVIDER`).
    pub budgets: IndexMap<String, BudgetConfig>,
    /// Things that did not stop the config from loading but that a person should hear about.
    pub warnings: Vec<String>,
}

/// One quota budget: its windows, its reset clock, and where the numbers came from.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    pub key: String,
    pub limits: Limits,
    pub reset: Reset,
    /// Premium providers: the most to spend in a UTC day.
    pub usd_per_day: Option<f64>,
    /// `preset groq, verified 2026-11-24`, `config`, or both.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub keys: Vec<SecretString>,
    pub max_body_bytes: usize,
    /// A client that has not sent its request headers within this (and then its body within
    /// it again) is cut off: slow clients cannot hold connections open.
    pub read_timeout: Duration,
    /// `Host` headers `/mcp` answers (the DNS-rebinding guard): names or `host:port`; empty
    /// means any host (`"*"` in the file). `None`: the loopback names and the listen address.
    pub mcp_allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From sending the request to the first byte of the answer: response headers, and for a
    /// stream its first event. Past it, the next lane is tried.
    pub first_byte: Duration,
    /// Longest silence inside a stream once it has started. Past it, the stream ends with an
    /// error event (no fallback is possible then).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(120),
        }
    }
}

/// The wire dialect of an HTTP provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// OpenAI chat completions (`{base_url}/chat/completions`, `Authorization: Bearer`).
    #[default]
    OpenAi,
    /// Anthropic Messages (`{base_url}/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    /// The preset it was made from.
    pub preset: Option<String>,
    pub kind: ProviderKind,
    /// OpenAI-compatible base URL, without a trailing slash (`…/v1`).
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub local: bool,
    pub premium: bool,
    pub timeouts: Timeouts,
    /// Why this provider cannot be used (a missing key, a kind this build lacks). Its lanes
    /// stay in their routes and are skipped with this reason.
    pub disabled: Option<String>,
    /// Set for `kind: embedded`: the model runs in this process.
    pub embedded: Option<EmbeddedConfig>,
    /// The preset's output limit for its lanes (a lane's own `max_output_tokens` wins).
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// A model-store name (`gemma3-270m`) or a path to a GGUF file.
    pub model: String,
    /// CPU threads; `None`: all available cores.
    pub threads: Option<u32>,
    /// Context window per sequence, in tokens.
    pub context_size: u32,
    /// Requests generated together in one batch.
    pub slots: u32,
}

/// `server.read_timeout` unless set.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub const DEFAULT_EMBEDDED_MODEL: &str = "gemma3-270m";

#[derive(Debug, Clone)]
pub struct LaneConfig {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub local: bool,
    pub premium: bool,
    /// Requests asking for more output are clamped to this (`None`: passed as asked).
    pub max_output_tokens: Option<u64>,
    /// Reasoning requests are mapped for this lane (else the reasoning ask is dropped).
    pub thinking: bool,
    /// Context window in tokens, when known: a longer prompt skips the lane.
    pub context_window: Option<u64>,
    /// Paid lanes: US dollars per million tokens.
    pub price: Option<Price>,
    /// Keys of the quota budgets it draws on; the first is its home (where a provider's 429
    /// parks it).
    pub budgets: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    pub name: String,
    pub chain: Vec<String>,
    pub premium: bool,
    pub local_only: bool,
    pub when: Option<When>,
}

/// Conditions under which a request without an explicit task goes to a route. All the
/// conditions given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    pub min_input_tokens: Option<u64>,
    pub has_images: Option<bool>,
    pub has_tools: Option<bool>,
    pub thinking: Option<bool>,
    pub model_glob: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Route(String),
    Lane(String),
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub pattern: String,
    pub target: Target,
}

#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    pub failures: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failures: 3,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// Something worth telling a person about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A request was answered by a later lane (or not at all) because an earlier one failed,
    /// was out of quota or cooling down, or had its breaker open.
    Fallback,
    /// A lane's budget is down to the target's `quota_low` share.
    QuotaLow,
    /// A lane's budget is spent (or its provider says so); it is parked until the reset.
    QuotaExhausted,
    /// A lane's breaker opened.
    LaneDown,
    /// A lane answered again.
    LaneUp,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Fallback,
        EventKind::QuotaLow,
        EventKind::QuotaExhausted,
        EventKind::LaneDown,
        EventKind::LaneUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fallback => "fallback",
            EventKind::QuotaLow => "quota_low",
            EventKind::QuotaExhausted => "quota_exhausted",
            EventKind::LaneDown => "lane_down",
            EventKind::LaneUp => "lane_up",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// A Slack incoming webhook: `{"text": …}`.
    Slack,
    /// Any URL: the event as JSON.
    Webhook,
    /// An ntfy topic URL: the text as the body, a title and tags as headers.
    Ntfy,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
            NotifyKind::Ntfy => "ntfy",
        }
    }
}

/// One `notify:` entry.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub kind: NotifyKind,
    /// Secret: a Slack webhook URL is its own credential. Never logged; targets are named by
    /// `name` (`slack#1`).
    pub url: SecretString,
    pub name: String,
    pub on: Vec<EventKind>,
    /// `quota_low` fires at or below this share left (0..1).
    pub quota_low: f64,
    pub window: Duration,
    pub headers: Vec<(String, SecretString)>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// SQLite database file of the ledger (unused when `postgres` is set).
    pub ledger: PathBuf,
    /// `storage.ledger: postgres://…`: the ledger in PostgreSQL, shared by replicas.
    pub postgres: Option<SecretString>,
    /// `redis://…`: quota counters, parks and open breakers shared by several replicas.
    pub shared: Option<SecretString>,
}

/// One problem in the file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file found (looked at {0}); pass --config FILE or see examples/")]
    NotFound(String),
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// The file to load: `--config`, `$SWITCHYARD_CONFIG`, `./switchyard.yaml`, then the user
/// config dir. An explicit path that does not exist is an error, never skipped.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os("SWITCHYARD_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from("switchyard.yaml")];
    if let Some(dir) = dirs::config_dir() {
        candidates.push(dir.join("switchyard").join("switchyard.yaml"));
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(ConfigError::NotFound(format!(
        "$SWITCHYARD_CONFIG, {}",
        looked.join(", ")
    )))
}

/// Reads, checks and resolves a config file, with `${VAR}` from the environment and the
/// `.env` beside the file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let env = Env::for_config_dir(path.parent()).map_err(|message| {
        ConfigError::Invalid(vec![Diagnostic {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message,
        }])
    })?;
    let mut config = from_str(&text, &path.display().to_string(), &env)?;
    config.source = Some(path.to_owned());
    Ok(config)
}

/// Checks and resolves config text. `file` is the name used in diagnostics.
pub fn from_str(text: &str, file: &str, env: &Env) -> Result<Config, ConfigError> {
    let raw: RawConfig = match serde_saphyr::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            let message = first_line_without_location(&e.to_string());
            return Err(ConfigError::Invalid(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                message,
            }]));
        }
    };
    Resolver {
        file,
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
    }
    .resolve(raw)
}

/// serde-saphyr renders a snippet under the message; the diagnostic keeps only the sentence
/// (the caller puts `file:line:column` in front). Also used for other YAML files (bench
/// prompt suites).
pub fn first_line_without_location(rendered: &str) -> String {
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(rendered)
        .trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 3 column 3: message" — the place is already in the diagnostic.
    let first = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((place, msg)) if place.contains(" column ") => msg,
        _ => first,
    };
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_owned(),
        None => first.to_owned(),
    }
}

struct Resolver<'a> {
    file: &'a str,
    env: &'a Env,
    errors: Vec<Diagnostic>,
    warnings: Vec<String>,
}

impl Resolver<'_> {
    fn error(&mut self, at: Location, message: String) {
        self.errors.push(Diagnostic {
            file: self.file.to_owned(),
            line: at.line(),
            column: at.column(),
            message,
        });
    }

    fn warn(&mut self, at: Location, message: String) {
        self.warnings
            .push(format!("{}:{}:{}: {message}", self.file, at.line(), at.column()));
    }

    fn resolve(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let default_timeouts = self.timeouts(raw.server.timeouts.as_ref(), Timeouts::default());
        let server = self.server(&raw.server);
        let health = self.health(&raw.health);

        let mut providers = IndexMap::new();
        for (name, p) in &raw.providers {
            if let Some(cfg) = self.provider(name, p, default_timeouts) {
                providers.insert(name.clone(), cfg);
            }
        }

        let mut lanes = IndexMap::new();
        for (name, l) in &raw.lanes {
            let Some(p) = providers.get(&l.value.provider.value) else {
                // A provider that failed to resolve already has its own error.
                if !raw.providers.contains_key(&l.value.provider.value) {
                    self.error(
                        l.value.provider.referenced,
                        format!(
                            "lane `{name}` uses provider `{}`, which does not exist; providers are: {}",
                            l.value.provider.value,
                            names(raw.providers.keys())
                        ),
                    );
                }
                continue;
            };
            let model = match (&l.value.model, &p.embedded) {
                (Some(m), _) if !m.value.is_empty() => m.value.clone(),
                (None, Some(e)) => e.model.clone(),
                _ => {
                    self.error(
                        l.referenced,
                        format!("lane `{name}` needs a `model` (the name the provider knows it by)"),
                    );
                    continue;
                }
            };
            let anthropic = p.kind == ProviderKind::Anthropic && p.embedded.is_none();
            let max_output_tokens = match &l.value.max_output_tokens {
                Some(n) if n.value == 0 => {
                    self.error(
                        n.referenced,
                        format!("lane `{name}`: `max_output_tokens` must be at least 1"),
                    );
                    None
                }
                Some(n) => Some(n.value),
                None if anthropic => catalog::anthropic_max_output(&model),
                None => p.max_output_tokens,
            };
            lanes.insert(
                name.clone(),
                LaneConfig {
                    name: name.clone(),
                    provider: p.name.clone(),
                    model,
                    local: p.local,
                    premium: p.premium,
                    max_output_tokens,
                    thinking: l.value.thinking.unwrap_or(anthropic),
                    context_window: l
                        .value
                        .context_window
                        .as_ref()
                        .map(|c| c.value)
                        .or(p.embedded.as_ref().map(|e| u64::from(e.context_size))),
                    price: l.value.price.as_ref().map(|pr| Price {
                        input: pr.value.input,
                        output: pr.value.output,
                    }),
                    budgets: Vec::new(),
                },
            );
        }
        let budgets = self.budgets(&raw, &providers, &mut lanes);

        let mut routes = IndexMap::new();
        for (name, r) in &raw.routes {
            if raw.lanes.contains_key(name) {
                self.error(
                    r.referenced,
                    format!("`{name}` is both a route and a lane; a model name must mean one thing"),
                );
            }
            let table = &r.value.0;
            if table.chain.is_empty() {
                self.error(r.referenced, format!("route `{name}` has no lanes; list at least one"));
            }
            let mut chain = Vec::new();
            for lane in &table.chain {
                match lanes.get(&lane.value) {
                    Some(l) => {
                        if table.local_only && !l.local {
                            self.error(
                                lane.referenced,
                                format!(
                                    "route `{name}` is local_only but lane `{}` runs at provider `{}`, which is not local; \
                                     use a local lane or mark the provider `local: true`",
                                    lane.value, l.provider
                                ),
                            );
                        }
                        chain.push(lane.value.clone());
                    }
                    None if raw.lanes.contains_key(&lane.value) => {} // the lane has its own error
                    None => self.error(
                        lane.referenced,
                        format!(
                            "lane `{}` in route `{name}` does not exist; lanes are: {}",
                            lane.value,
                            names(raw.lanes.keys())
                        ),
                    ),
                }
            }
            let when = table.when.as_ref().map(|w| {
                if name == "default" {
                    self.warn(
                        w.referenced,
                        "route `default` is the fallback of all rules; its `when` is never used".into(),
                    );
                }
                When {
                    min_input_tokens: w.value.min_input_tokens,
                    has_images: w.value.has_images,
                    has_tools: w.value.has_tools,
                    thinking: w.value.thinking,
                    model_glob: w.value.model_glob.clone(),
                }
            });
            routes.insert(
                name.clone(),
                RouteConfig {
                    name: name.clone(),
                    chain,
                    premium: table.premium,
                    local_only: table.local_only,
                    when,
                },
            );
        }
        if !raw.routes.contains_key("default") {
            if raw.lanes.is_empty() {
                self.errors.push(Diagnostic {
                    file: self.file.to_owned(),
                    line: 0,
                    column: 0,
                    message: "no lanes are configured; add `providers`, `lanes` and a `default` route (see examples/)"
                        .into(),
                });
            } else {
                self.warnings.push(format!(
                    "{}: no `default` route; requests must name a route or lane (routes are: {})",
                    self.file,
                    names(raw.routes.keys())
                ));
            }
        }

        let mut aliases = Vec::new();
        for (pattern, target) in &raw.aliases {
            let t = &target.value;
            let target = if raw.routes.contains_key(t) {
                Target::Route(t.clone())
            } else if raw.lanes.contains_key(t) {
                Target::Lane(t.clone())
            } else {
                self.error(
                    target.referenced,
                    format!(
                        "alias `{pattern}` points at `{t}`, which is neither a route nor a lane; routes are: {}; lanes are: {}",
                        names(raw.routes.keys()),
                        names(raw.lanes.keys())
                    ),
                );
                continue;
            };
            aliases.push(Alias {
                pattern: pattern.clone(),
                target,
            });
        }

        let notify = raw
            .notify
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.notify(i, n))
            .collect();
        if raw.storage.keep_prompts == Some(true) {
            self.warnings.push(format!(
                "{}: `storage.keep_prompts` is not supported yet; prompts are not stored",
                self.file
            ));
        }
        let storage = self.storage(&raw);

        if !self.errors.is_empty() {
            self.errors.sort_by_key(|d| (d.line, d.column));
            return Err(ConfigError::Invalid(self.errors));
        }
        Ok(Config {
            source: None,
            server,
            providers,
            lanes,
            routes,
            aliases,
            health,
            storage,
            notify,
            budgets,
            warnings: self.warnings,
        })
    }

    /// Resolves `limits:` and the presets' free tiers into budgets, and gives each lane its
    /// budgets, context window and price.
    fn budgets(
        &mut self,
        raw: &RawConfig,
        providers: &IndexMap<String, ProviderConfig>,
        lanes: &mut IndexMap<String, LaneConfig>,
    ) -> IndexMap<String, BudgetConfig> {
        struct Over {
            limits: Limits,
            reset: Option<Reset>,
            per: Option<Per>,
            usd_per_day: Option<f64>,
        }
        let mut by_provider = std::collections::HashMap::new();
        let mut by_lane = std::collections::HashMap::new();
        for (name, entry) in &raw.limits {
            let is_provider = raw.providers.contains_key(name);
            let is_lane = raw.lanes.contains_key(name);
            let l = &entry.value;
            if is_provider == is_lane {
                let why = if is_provider {
                    "is both a provider and a lane; rename one so the limits say which".to_owned()
                } else {
                    format!(
                        "is neither a provider nor a lane; providers are: {}; lanes are: {}",
                        names(raw.providers.keys()),
                        names(raw.lanes.keys())
                    )
                };
                self.error(entry.referenced, format!("`limits.{name}` {why}"));
                continue;
            }
            let reset = l.reset.as_ref().and_then(|r| {
                let v = Reset::parse(&r.value);
                if v.is_none() {
                    self.error(
                        r.referenced,
                        format!(
                            "`limits.{name}.reset`: `{}` is not a reset clock; write utc_midnight, pacific_midnight, rolling or monthly",
                            r.value
                        ),
                    );
                }
                v
            });
            let per = l.per.as_ref().and_then(|p| match (p.value.as_str(), is_lane) {
                (_, true) => {
                    self.error(
                        p.referenced,
                        format!("`limits.{name}.per` is for provider entries; a lane's limits count for that lane"),
                    );
                    None
                }
                ("model", _) => Some(Per::Model),
                ("provider", _) => Some(Per::Provider),
                (other, _) => {
                    self.error(
                        p.referenced,
                        format!("`limits.{name}.per`: `{other}` is not `model` or `provider`"),
                    );
                    None
                }
            });
            let usd_per_day = l.usd_per_day.as_ref().and_then(|u| {
                if u.value.is_finite() && u.value >= 0.0 {
                    Some(u.value)
                } else {
                    self.error(u.referenced, format!("`limits.{name}.usd_per_day` must be 0 or more"));
                    None
                }
            });
            let over = Over {
                limits: Limits {
                    rps: l.rps,
                    rpm: l.rpm,
                    rph: l.rph,
                    rpd: l.rpd,
                    tpm: l.tpm,
                    tph: l.tph,
                    tpd: l.tpd,
                    tokens_per_month: l.tokens_per_month,
                    neurons_per_day: l.neurons_per_day,
                    context: None,
                },
                reset,
                per,
                usd_per_day,
            };
            if is_provider {
                by_provider.insert(name.clone(), over);
            } else {
                by_lane.insert(name.clone(), over);
            }
        }

        let mut budgets = IndexMap::new();
        for lane in lanes.values_mut() {
            let Some(p) = providers.get(&lane.provider) else {
                continue;
            };
            let facts = p.preset.as_deref().and_then(catalog::facts);
            let over = by_provider.get(&p.name);
            let per = over
                .and_then(|o| o.per)
                .or(facts.map(|f| f.per))
                .unwrap_or(Per::Provider);
            let reset = over
                .and_then(|o| o.reset)
                .or(facts.map(|f| f.reset))
                .unwrap_or(Reset::Rolling);
            let base = facts.map(|f| f.limits_for(&lane.model)).unwrap_or_default();
            let limits = base.merged(over.map_or_else(Limits::default, |o| o.limits));
            let source = match (facts, over) {
                (Some(f), Some(_)) => format!(
                    "config over preset {} (checked {})",
                    p.preset.as_deref().unwrap_or("?"),
                    f.verified_on
                ),
                (Some(f), None) => format!(
                    "preset {} (checked {})",
                    p.preset.as_deref().unwrap_or("?"),
                    f.verified_on
                ),
                (None, Some(_)) => "config".to_owned(),
                (None, None) => "none (only what the provider reports)".to_owned(),
            };
            let home = match per {
                Per::Model => format!("{}/{}", p.name, lane.model),
                Per::Provider => p.name.clone(),
            };
            budgets.entry(home.clone()).or_insert_with(|| BudgetConfig {
                key: home.clone(),
                limits,
                reset,
                usd_per_day: None,
                source,
            });
            lane.budgets = vec![home];
            if let Some(usd) = over.and_then(|o| o.usd_per_day) {
                let key = format!("spend:{}", p.name);
                budgets.entry(key.clone()).or_insert_with(|| BudgetConfig {
                    key: key.clone(),
                    limits: Limits::default(),
                    reset: Reset::UtcMidnight,
                    usd_per_day: Some(usd),
                    source: "config".into(),
                });
                lane.budgets.push(key);
            }
            if let Some(o) = by_lane.get(&lane.name) {
                let key = format!("lane:{}", lane.name);
                budgets.insert(
                    key.clone(),
                    BudgetConfig {
                        key: key.clone(),
                        limits: o.limits,
                        reset: o.reset.unwrap_or(reset),
                        usd_per_day: o.usd_per_day,
                        source: "config".into(),
                    },
                );
                lane.budgets.push(key);
            }
            if lane.context_window.is_none() {
                lane.context_window = limits.context;
            }
            if lane.price.is_none() && p.premium {
                lane.price = p
                    .preset
                    .as_deref()
                    .and_then(|pr| catalog::price(pr, &lane.model))
                    .map(|(price, _)| price);
            }
        }
        budgets
    }

    fn server(&mut self, raw: &raw::RawServer) -> ServerConfig {
        let listen = match &raw.listen {
            None => SocketAddr::from((Ipv4Addr::LOCALHOST, 4000)),
            Some(l) => match self.env.expand(&l.value).map(|s| parse_listen(&s)) {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    self.error(l.referenced, e);
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 4000))
                }
                Err(missing) => {
                    self.error(
                        l.referenced,
                        format!("`server.listen` uses unset variable(s) {}", missing.join(", ")),
                    );
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 4000))
                }
            },
        };
        let mut keys = Vec::new();
        for k in raw.keys.iter().flatten() {
            match self.env.expand(&k.value) {
                Ok(v) if !v.is_empty() => keys.push(SecretString::from(v)),
                Ok(_) => self.warn(k.referenced, "an empty key in `server.keys` is ignored".into()),
                Err(missing) => self.warn(
                    k.referenced,
                    format!(
                        "a key in `server.keys` uses unset variable(s) {}; that key is ignored",
                        missing.join(", ")
                    ),
                ),
            }
        }
        let max_body_bytes = match &raw.max_body {
            None => DEFAULT_MAX_BODY,
            Some(s) => match parse_size(&s.value.0) {
                Ok(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
                Ok(_) => {
                    self.error(s.referenced, "`server.max_body` must be more than 0".into());
                    DEFAULT_MAX_BODY
                }
                Err(e) => {
                    self.error(s.referenced, e);
                    DEFAULT_MAX_BODY
                }
            },
        };
        let read_timeout = self.duration(raw.read_timeout.as_ref(), DEFAULT_READ_TIMEOUT);
        let mcp_allowed_hosts = raw.mcp_allowed_hosts.as_ref().map(|list| self.mcp_hosts(list));
        ServerConfig {
            listen,
            keys,
            max_body_bytes,
            read_timeout,
            mcp_allowed_hosts,
        }
    }

    /// `server.mcp_allowed_hosts`: host names, addresses or `host:port`, or `"*"` alone for
    /// any host (an empty list would mean the same to the MCP library, so it is refused as
    /// probably a mistake).
    fn mcp_hosts(&mut self, list: &S<Vec<S<String>>>) -> Vec<String> {
        let mut hosts = Vec::new();
        for h in &list.value {
            let v = match self.env.expand(&h.value) {
                Ok(v) => v.trim().to_ascii_lowercase(),
                Err(missing) => {
                    self.error(
                        h.referenced,
                        format!(
                            "`server.mcp_allowed_hosts` uses unset variable(s) {}",
                            missing.join(", ")
                        ),
                    );
                    continue;
                }
            };
            if v == "*" {
                if list.value.len() > 1 {
                    self.error(
                        h.referenced,
                        "`\"*\"` (any host) stands alone in `server.mcp_allowed_hosts`".into(),
                    );
                }
                return Vec::new();
            }
            if v.is_empty() || v.contains("://") || v.contains(['/', ' ', '\t', '?', '#', '@']) {
                self.error(
                    h.referenced,
                    format!(
                        "`{v}` is not a host: give a name, an address or host:port, without a scheme or path \
                         (e.g. `gateway.lan`, `10.0.0.5:4000`), or `\"*\"` for any host"
                    ),
                );
                continue;
            }
            hosts.push(v);
        }
        if list.value.is_empty() {
            self.error(
                list.referenced,
                "`server.mcp_allowed_hosts` is empty: list the hosts clients reach this gateway by, or `\"*\"` for any"
                    .into(),
            );
        }
        hosts
    }

    fn duration(&mut self, v: Option<&S<raw::Scalar>>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(&s.value.0) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.error(
                        s.referenced,
                        "a duration of zero would fail every request; give a positive one".into(),
                    );
                    default
                }
                Err(e) => {
                    self.error(s.referenced, e);
                    default
                }
            },
        }
    }

    fn timeouts(&mut self, raw: Option<&RawTimeouts>, base: Timeouts) -> Timeouts {
        let Some(t) = raw else { return base };
        Timeouts {
            connect: self.duration(t.connect.as_ref(), base.connect),
            first_byte: self.duration(t.first_byte.as_ref(), base.first_byte),
            idle: self.duration(t.idle.as_ref(), base.idle),
        }
    }

    fn health(&mut self, raw: &raw::RawHealth) -> HealthConfig {
        let d = HealthConfig::default();
        let cooldown = self.duration(raw.cooldown.as_ref(), d.cooldown);
        let max_cooldown = self.duration(raw.max_cooldown.as_ref(), d.max_cooldown.max(cooldown));
        HealthConfig {
            failures: raw.failures.unwrap_or(d.failures).max(1),
            cooldown,
            max_cooldown: max_cooldown.max(cooldown),
        }
    }

    fn provider(&mut self, name: &str, p: &S<raw::RawProvider>, default_timeouts: Timeouts) -> Option<ProviderConfig> {
        let raw = &p.value;
        let preset = match &raw.preset {
            Some(ps) => match catalog::preset(&ps.value) {
                Some(found) => Some(found),
                None => {
                    self.error(
                        ps.referenced,
                        format!(
                            "provider `{name}`: unknown preset `{}`; presets are: {}",
                            ps.value,
                            catalog::preset_names()
                        ),
                    );
                    return None;
                }
            },
            None => None,
        };
        let kind = raw.kind.as_ref().map(|k| k.value.as_str());
        let mut disabled = preset.and_then(|p| p.unsupported).map(str::to_owned);
        let wire = match kind {
            None => preset.map_or(ProviderKind::OpenAi, |p| p.kind),
            Some("openai") => ProviderKind::OpenAi,
            Some("anthropic") => ProviderKind::Anthropic,
            Some("embedded") => return self.embedded_provider(name, p, default_timeouts),
            Some(other) => {
                let at = raw.kind.as_ref().map(|k| k.referenced).unwrap_or(p.referenced);
                self.error(
                    at,
                    format!("provider `{name}`: unknown kind `{other}`; kinds are: openai, anthropic, embedded"),
                );
                return None;
            }
        };
        if kind.is_none() && preset.is_none() {
            self.error(
                p.referenced,
                format!(
                    "provider `{name}` needs `preset` (one of: {}) or `kind`",
                    catalog::preset_names()
                ),
            );
            return None;
        }

        let mut missing_vars = Vec::new();
        let mut expand = |v: &Option<S<String>>| -> Option<String> {
            let v = v.as_ref()?;
            match self.env.expand(&v.value) {
                Ok(s) => Some(s),
                Err(m) => {
                    missing_vars.extend(m);
                    None
                }
            }
        };
        let api_key = expand(&raw.api_key);
        let account_id = expand(&raw.account_id);
        let base_url = expand(&raw.base_url);
        let base_url = match (base_url, preset) {
            (Some(u), _) => u,
            (None, Some(ps)) => ps.base_url.to_owned(),
            (None, None) if disabled.is_some() || !missing_vars.is_empty() => String::new(),
            (None, None) => {
                self.error(
                    p.referenced,
                    format!("provider `{name}` needs a `base_url` such as http://127.0.0.1:8080/v1"),
                );
                return None;
            }
        };
        let base_url = if base_url.contains("{account_id}") {
            match &account_id {
                Some(id) => base_url.replace("{account_id}", id),
                None if missing_vars.is_empty() => {
                    self.error(
                        p.referenced,
                        format!("provider `{name}` needs `account_id` for its base URL"),
                    );
                    return None;
                }
                None => base_url,
            }
        } else {
            base_url
        };
        let base_url = base_url.trim_end_matches('/').to_owned();
        if disabled.is_none() && !missing_vars.is_empty() {
            missing_vars.dedup();
            disabled = Some(format!("unset environment variable(s) {}", missing_vars.join(", ")));
        }
        if disabled.is_none() && !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            let at = raw.base_url.as_ref().map(|b| b.referenced).unwrap_or(p.referenced);
            self.error(
                at,
                format!("provider `{name}`: base_url `{base_url}` must start with http:// or https://"),
            );
            return None;
        }
        if disabled.is_none() && api_key.is_none() && preset.is_some_and(|p| p.needs_key) {
            disabled = Some("no `api_key` set".into());
        }
        if let Some(why) = &disabled {
            self.warn(
                p.referenced,
                format!("provider `{name}` is disabled: {why}; its lanes will be skipped"),
            );
        }
        for (key, v) in [
            ("threads", &raw.threads),
            ("context_size", &raw.context_size),
            ("slots", &raw.slots),
        ] {
            if let Some(v) = v {
                self.error(
                    v.referenced,
                    format!("provider `{name}`: `{key}` is only for `kind: embedded`"),
                );
            }
        }
        let local = raw.local.unwrap_or(preset.is_some_and(|p| p.local));
        let premium = raw.premium.unwrap_or(preset.is_some_and(|p| p.premium));
        Some(ProviderConfig {
            name: name.to_owned(),
            preset: preset.map(|p| p.name.to_owned()),
            kind: wire,
            max_output_tokens: preset.and_then(|p| p.max_output_tokens),
            base_url,
            api_key: api_key.filter(|k| !k.is_empty()).map(SecretString::from),
            local,
            premium,
            timeouts: self.timeouts(raw.timeouts.as_ref(), default_timeouts),
            disabled,
            embedded: None,
        })
    }

    fn embedded_provider(
        &mut self,
        name: &str,
        p: &S<raw::RawProvider>,
        default_timeouts: Timeouts,
    ) -> Option<ProviderConfig> {
        let raw = &p.value;
        for (key, present) in [
            ("preset", raw.preset.is_some()),
            ("base_url", raw.base_url.is_some()),
            ("api_key", raw.api_key.is_some()),
        ] {
            if present {
                self.error(
                    p.referenced,
                    format!("provider `{name}` is `kind: embedded`: it has no `{key}`"),
                );
            }
        }
        let model = match &raw.model {
            Some(m) => match self.env.expand(&m.value) {
                Ok(v) => v,
                Err(missing) => {
                    self.error(
                        m.referenced,
                        format!("`model` uses unset variable(s) {}", missing.join(", ")),
                    );
                    return None;
                }
            },
            None => DEFAULT_EMBEDDED_MODEL.to_owned(),
        };
        let positive = |this: &mut Self, v: &Option<S<u32>>, key: &str| -> Option<u32> {
            let v = v.as_ref()?;
            if v.value == 0 {
                this.error(v.referenced, format!("provider `{name}`: `{key}` must be at least 1"));
            }
            Some(v.value.max(1))
        };
        let threads = positive(self, &raw.threads, "threads");
        let context_size = positive(self, &raw.context_size, "context_size").unwrap_or(4096);
        let slots = positive(self, &raw.slots, "slots").unwrap_or(4);
        // A local model may need to be fetched and loaded before its first token.
        let base = Timeouts {
            first_byte: Duration::from_secs(600),
            ..default_timeouts
        };
        Some(ProviderConfig {
            name: name.to_owned(),
            preset: None,
            kind: ProviderKind::OpenAi,
            max_output_tokens: None,
            base_url: String::new(),
            api_key: None,
            local: raw.local.unwrap_or(true),
            premium: raw.premium.unwrap_or(false),
            timeouts: self.timeouts(raw.timeouts.as_ref(), base),
            disabled: None,
            embedded: Some(EmbeddedConfig {
                model,
                threads,
                context_size,
                slots,
            }),
        })
    }

    fn notify(&mut self, i: usize, n: &S<raw::RawNotify>) -> Option<NotifyConfig> {
        let raw = &n.value;
        let kind = match raw.kind.value.as_str() {
            "slack" => NotifyKind::Slack,
            "webhook" => NotifyKind::Webhook,
            "ntfy" => NotifyKind::Ntfy,
            other => {
                self.error(
                    raw.kind.referenced,
                    format!("notify: unknown kind `{other}`; kinds are: slack, webhook, ntfy"),
                );
                return None;
            }
        };
        let name = format!("{}#{}", kind.as_str(), i + 1);
        let mut on = Vec::new();
        match &raw.on {
            None => on.extend(EventKind::ALL),
            Some(list) => {
                for e in list {
                    match EventKind::parse(&e.value) {
                        Some(k) if !on.contains(&k) => on.push(k),
                        Some(_) => {}
                        None => self.error(
                            e.referenced,
                            format!(
                                "notify: unknown event `{}`; events are: {}",
                                e.value,
                                EventKind::ALL.map(EventKind::as_str).join(", ")
                            ),
                        ),
                    }
                }
            }
        }
        let quota_low = match &raw.quota_low {
            None => 0.1,
            Some(q) => {
                let t = q.value.0.trim();
                let parsed = match t.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
                    None => t.parse::<f64>(),
                };
                match parsed {
                    Ok(v) if (0.0..1.0).contains(&v) => v,
                    _ => {
                        self.error(
                            q.referenced,
                            format!("notify: quota_low `{t}` must be a share below 1, such as `0.1` or `10%`"),
                        );
                        0.1
                    }
                }
            }
        };
        let window = self.duration(raw.window.as_ref(), Duration::from_secs(300));
        let mut missing = Vec::new();
        let url = match self.env.expand(&raw.url.value) {
            Ok(u) => u,
            Err(m) => {
                missing.extend(m);
                String::new()
            }
        };
        let mut headers = Vec::new();
        for (k, v) in &raw.headers {
            match self.env.expand(&v.value) {
                Ok(v) => headers.push((k.clone(), SecretString::from(v))),
                Err(m) => missing.extend(m),
            }
        }
        if !missing.is_empty() {
            missing.dedup();
            self.warn(
                n.referenced,
                format!(
                    "notify target {name} is off: unset environment variable(s) {}",
                    missing.join(", ")
                ),
            );
            return None;
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            // The URL may hold a secret (a Slack webhook): say what is wrong, not what it is.
            self.error(
                raw.url.referenced,
                format!("notify target {name}: `url` must start with http:// or https://"),
            );
            return None;
        }
        if let Err(e) = url.parse::<http::Uri>() {
            self.error(
                raw.url.referenced,
                format!("notify target {name}: `url` is not a URL ({e})"),
            );
            return None;
        }
        for (k, _) in &headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                self.error(
                    n.referenced,
                    format!("notify target {name}: `{k}` is not a header name"),
                );
            }
        }
        Some(NotifyConfig {
            kind,
            url: SecretString::from(url),
            name,
            on,
            quota_low,
            window,
            headers,
        })
    }

    fn storage(&mut self, raw: &RawConfig) -> StorageConfig {
        let default = || {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("switchyard")
                .join("ledger.db")
        };
        let mut postgres = None;
        let ledger = match &raw.storage.ledger {
            None => default(),
            Some(l) => match self.env.expand(&l.value) {
                Ok(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                    postgres = Some(SecretString::from(s));
                    default()
                }
                Ok(s) => {
                    let path = s
                        .strip_prefix("sqlite://")
                        .or_else(|| s.strip_prefix("sqlite:"))
                        .unwrap_or(&s);
                    expand_home(path)
                }
                Err(m) => {
                    self.error(
                        l.referenced,
                        format!("`storage.ledger` uses unset variable(s) {}", m.join(", ")),
                    );
                    default()
                }
            },
        };
        let shared = match &raw.storage.shared {
            None => None,
            Some(u) => match self.env.expand(&u.value) {
                Ok(url) if url.starts_with("redis://") || url.starts_with("unix://") => Some(SecretString::from(url)),
                Ok(_) => {
                    self.error(
                        u.referenced,
                        "`storage.shared` must be a redis:// (or unix://) URL, such as redis://127.0.0.1:6379".into(),
                    );
                    None
                }
                // An error, not a warning: replicas that silently count alone spend quotas twice.
                Err(m) => {
                    self.error(
                        u.referenced,
                        format!("`storage.shared` uses unset variable(s) {}", m.join(", ")),
                    );
                    None
                }
            },
        };
        StorageConfig {
            ledger,
            postgres,
            shared,
        }
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "`{s}` is not an address to listen on; write e.g. `127.0.0.1:4000` or `0.0.0.0:4000`"
    ))
}

/// Parses `--listen` the same way as `server.listen`.
pub fn parse_listen_arg(s: &str) -> Result<SocketAddr, String> {
    parse_listen(s)
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() { "(none)".into() } else { v.join(", ") }
}

impl Config {
    /// A readable summary of what this config resolves to, for `switchyard check`.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "listen: {}  (keys: {}, max body: {} bytes)",
            self.server.listen,
            self.server.keys.len(),
            self.server.max_body_bytes
        );
        match &self.storage.postgres {
            Some(url) => {
                let _ = writeln!(
                    s,
                    "ledger: {} (PostgreSQL)",
                    crate::shared::redact(secrecy::ExposeSecret::expose_secret(url))
                );
            }
            None => {
                let _ = writeln!(s, "ledger: {}", self.storage.ledger.display());
            }
        }
        if let Some(u) = &self.storage.shared {
            let _ = writeln!(
                s,
                "shared: {} (quota counters, parks and open breakers shared with other replicas)",
                crate::shared::redact(secrecy::ExposeSecret::expose_secret(u))
            );
        }
        let _ = writeln!(s, "providers:");
        for p in self.providers.values() {
            let mut tags = vec![if p.local { "local" } else { "cloud" }];
            if p.premium {
                tags.push("premium");
            }
            if p.kind == ProviderKind::Anthropic && p.embedded.is_none() {
                tags.push("anthropic");
            }
            let state = p
                .disabled
                .as_ref()
                .map(|d| format!("  DISABLED: {d}"))
                .unwrap_or_default();
            let _ = writeln!(s, "  {:<14} {} [{}]{state}", p.name, p.base_url, tags.join(", "));
        }
        let _ = writeln!(s, "routes:");
        for r in self.routes.values() {
            let chain: Vec<String> = r
                .chain
                .iter()
                .map(|l| match self.lanes.get(l) {
                    Some(lane) => {
                        let mut t = format!("{l} ({}/{})", lane.provider, lane.model);
                        if lane.premium && !r.premium {
                            t.push_str(" [premium: only when allowed]");
                        }
                        if self.providers.get(&lane.provider).is_some_and(|p| p.disabled.is_some()) {
                            t.push_str(" [disabled]");
                        }
                        t
                    }
                    None => l.clone(),
                })
                .collect();
            let mut flags = Vec::new();
            if r.premium {
                flags.push("premium".to_owned());
            }
            if r.local_only {
                flags.push("local_only".to_owned());
            }
            if let Some(w) = &r.when {
                flags.push(format!("when {}", describe_when(w)));
            }
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!("  ({})", flags.join("; "))
            };
            let _ = writeln!(s, "  {:<14} {}{flags}", r.name, chain.join(" -> "));
        }
        let counted: Vec<&BudgetConfig> = self
            .budgets
            .values()
            .filter(|b| !b.limits.budgets().is_empty() || b.usd_per_day.is_some())
            .collect();
        if !counted.is_empty() {
            let _ = writeln!(
                s,
                "quotas (checked before each request; `switchyard status` shows what is left):"
            );
            for b in counted {
                let mut parts: Vec<String> = b.limits.budgets().iter().map(|(k, v)| format!("{k} {v}")).collect();
                if let Some(n) = b.limits.neurons_per_day {
                    parts.push(format!("neurons/day {n} (enforced by the provider's 429)"));
                }
                if let Some(usd) = b.usd_per_day {
                    parts.push(format!("${usd:.2}/day"));
                }
                let _ = writeln!(
                    s,
                    "  {}: {}  ({}; {})",
                    b.key,
                    parts.join(", "),
                    b.reset.as_str(),
                    b.source
                );
            }
        }
        if !self.aliases.is_empty() {
            let _ = writeln!(s, "aliases:");
            for a in &self.aliases {
                let (kind, t) = match &a.target {
                    Target::Route(t) => ("route", t),
                    Target::Lane(t) => ("lane", t),
                };
                let _ = writeln!(s, "  {:<14} -> {kind} {t}", a.pattern);
            }
        }
        if !self.notify.is_empty() {
            let _ = writeln!(s, "notify:");
            for n in &self.notify {
                let on: Vec<&str> = n.on.iter().map(|e| e.as_str()).collect();
                let _ = writeln!(
                    s,
                    "  {:<14} on {}  (one message per lane and event per {}s; quota_low at {:.0}% left)",
                    n.name,
                    on.join(", "),
                    n.window.as_secs(),
                    n.quota_low * 100.0
                );
            }
        }
        s
    }
}

fn describe_when(w: &When) -> String {
    let mut parts = Vec::new();
    if let Some(n) = w.min_input_tokens {
        parts.push(format!("input >= {n} tokens"));
    }
    for (name, v) in [
        ("images", w.has_images),
        ("tools", w.has_tools),
        ("thinking", w.thinking),
    ] {
        if let Some(v) = v {
            parts.push(format!("{}{name}", if v { "has " } else { "no " }));
        }
    }
    if let Some(g) = &w.model_glob {
        parts.push(format!("model matches {g}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
