//! The config file exactly as written: serde structs that refuse unknown keys and remember
//! where each value stood in the file. Nothing outside `config` sees these; [`super::load`]
//! turns them into the validated [`super::Config`].

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: IndexMap<String, S<RawProvider>>,
    #[serde(default)]
    pub lanes: IndexMap<String, S<RawLane>>,
    #[serde(default)]
    pub routes: IndexMap<String, S<RawRoute>>,
    #[serde(default)]
    pub aliases: IndexMap<String, S<String>>,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub storage: RawStorage,
    /// Free-tier budgets by provider or lane name: override or add to the presets' own.
    #[serde(default)]
    pub limits: IndexMap<String, S<RawLimits>>,
    /// Where to say that something happened: fallbacks, quotas running low or spent, lanes
    /// going down and coming back.
    #[serde(default)]
    pub notify: Vec<S<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// `slack`, `webhook` or `ntfy`.
    pub kind: S<String>,
    pub url: S<String>,
    /// Events to send (default: all).
    pub on: Option<Vec<S<String>>>,
    /// `quota_low` fires when a budget has this share or less left: `0.1` or `10%`.
    pub quota_low: Option<S<Scalar>>,
    /// One message per lane and event in this window, with a count (default 5m).
    pub window: Option<S<Scalar>>,
    /// Extra request headers (an auth token for a webhook or ntfy).
    #[serde(default)]
    pub headers: IndexMap<String, S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<S<String>>,
    pub keys: Option<Vec<S<String>>>,
    /// Largest request body accepted: bytes, or `32MiB`, `512KB` …
    pub max_body: Option<S<Scalar>>,
    /// How long a client may take to send a request's headers, and then its body.
    pub read_timeout: Option<S<Scalar>>,
    pub timeouts: Option<RawTimeouts>,
    /// `Host` names (or `host:port`) that `/mcp` answers; `"*"` for any.
    pub mcp_allowed_hosts: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<S<Scalar>>,
    pub first_byte: Option<S<Scalar>>,
    pub idle: Option<S<Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: Option<S<String>>,
    pub preset: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub api_key: Option<S<String>>,
    pub account_id: Option<S<String>>,
    pub local: Option<bool>,
    pub premium: Option<bool>,
    /// The model of an `embedded` provider: a name from the model store or a GGUF path.
    pub model: Option<S<String>>,
    /// Embedded only: CPU threads (default: all cores), context size in tokens per sequence,
    /// and how many requests are generated at once in one batch.
    pub threads: Option<S<u32>>,
    pub context_size: Option<S<u32>>,
    pub slots: Option<S<u32>>,
    pub timeouts: Option<RawTimeouts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLane {
    pub provider: S<String>,
    pub model: Option<S<String>>,
    /// The most tokens this lane may be asked to write; a request asking for more is clamped.
    pub max_output_tokens: Option<S<u64>>,
    /// The model can reason (Anthropic `thinking`, OpenAI `reasoning_effort`); requests that
    /// ask for it are mapped for this lane, and stripped for lanes without it.
    pub thinking: Option<bool>,
    /// The model's context window in tokens; longer prompts skip this lane.
    pub context_window: Option<S<u64>>,
    /// US dollars per million tokens, for the ledger's cost and the daily spend cap.
    pub price: Option<S<RawPrice>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
}

/// A `limits:` entry. Short names as the providers' docs write them, or spelled out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(alias = "requests_per_second")]
    pub rps: Option<u64>,
    #[serde(alias = "requests_per_minute")]
    pub rpm: Option<u64>,
    #[serde(alias = "requests_per_hour")]
    pub rph: Option<u64>,
    #[serde(alias = "requests_per_day")]
    pub rpd: Option<u64>,
    #[serde(alias = "tokens_per_minute")]
    pub tpm: Option<u64>,
    #[serde(alias = "tokens_per_hour")]
    pub tph: Option<u64>,
    #[serde(alias = "tokens_per_day")]
    pub tpd: Option<u64>,
    pub tokens_per_month: Option<u64>,
    pub neurons_per_day: Option<u64>,
    /// `utc_midnight`, `pacific_midnight`, `rolling` or `monthly`.
    pub reset: Option<S<String>>,
    /// `model` or `provider`: whether a provider's numbers count per model or for the account.
    pub per: Option<S<String>>,
    /// Premium providers: stop using them once this much was spent today (UTC).
    pub usd_per_day: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteTable {
    pub chain: Vec<S<String>>,
    #[serde(default)]
    pub premium: bool,
    #[serde(default)]
    pub local_only: bool,
    pub when: Option<S<RawWhen>>,
}

/// A route is either a list of lanes or a table with a `chain`.
#[derive(Debug)]
pub struct RawRoute(pub RawRouteTable);

// Hand-written rather than `#[serde(untagged)]`: untagged enums buffer their input and lose
// the line/column of every lane name, which the "lane does not exist" error needs.
impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRoute;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of lane names, or a table with `chain` (and `premium`, `local_only`, `when`)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawRoute, A::Error> {
                let mut chain = Vec::new();
                while let Some(lane) = seq.next_element()? {
                    chain.push(lane);
                }
                Ok(RawRoute(RawRouteTable {
                    chain,
                    ..Default::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRoute, A::Error> {
                RawRouteTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawRoute)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub min_input_tokens: Option<u64>,
    pub has_images: Option<bool>,
    pub has_tools: Option<bool>,
    pub thinking: Option<bool>,
    pub model_glob: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Consecutive failures that open a lane's breaker.
    pub failures: Option<u32>,
    /// First wait before a dead lane is probed again; doubles up to `max_cooldown`.
    pub cooldown: Option<S<Scalar>>,
    pub max_cooldown: Option<S<Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub ledger: Option<S<String>>,
    pub shared: Option<S<String>>,
    pub keep_prompts: Option<bool>,
}

/// A YAML scalar that may be written as a number or a string (`30`, `30s`, `32MiB`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string such as `30s` or `32MiB`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
