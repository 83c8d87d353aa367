//! Provider presets: what `preset: NAME` fills in (base URL, whether a key is needed, whether
//! the provider runs on the user's own hardware, whether it costs money).
//!
//! Facts from shared/research/providers.md §1 and §5, checked on the date below. Free-tier
//! limits, their reset clocks and paid prices are data, not code: `data/catalog.yaml`, each
//! provider with the date it was checked (a config's `limits:` overrides or adds).

use crate::config::{ProviderKind, glob_match};
use indexmap::IndexMap;
use serde::Deserialize;
use std::sync::OnceLock;

pub const VERIFIED_ON: &str = "2026-11-24";

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// `{account_id}` is replaced by the provider's `account_id`.
    pub base_url: &'static str,
    pub needs_key: bool,
    pub local: bool,
    pub premium: bool,
    /// `Some(why)`: this build cannot talk to it yet.
    pub unsupported: Option<&'static str>,
    pub kind: ProviderKind,
    /// Output tokens a request may ask of its lanes. Hosted OpenAI-compatible APIs refuse a
    /// `max_tokens` above their model's limit (Claude Code asks for 32k–128k), so their lanes
    /// are clamped to a value every current free-tier model accepts; raise it per lane with
    /// `max_output_tokens`. Local servers stop at their context instead of refusing.
    pub max_output_tokens: Option<u64>,
    /// The environment variable its key is usually in (for the zero-config default).
    pub key_env: Option<&'static str>,
    /// A sensible free-tier model for the zero-config default.
    pub default_model: Option<&'static str>,
}

const fn p(name: &'static str, base_url: &'static str, needs_key: bool, local: bool) -> Preset {
    Preset {
        name,
        base_url,
        needs_key,
        local,
        premium: false,
        unsupported: None,
        kind: ProviderKind::OpenAi,
        max_output_tokens: None,
        key_env: None,
        default_model: None,
    }
}

/// Output limit of the hosted cloud presets (see `Preset::max_output_tokens`).
const CLOUD_MAX_OUTPUT: Option<u64> = Some(8192);

const fn cloud(name: &'static str, base_url: &'static str, key_env: &'static str, model: &'static str) -> Preset {
    Preset {
        key_env: Some(key_env),
        default_model: Some(model),
        max_output_tokens: CLOUD_MAX_OUTPUT,
        ..p(name, base_url, true, false)
    }
}

pub const PRESETS: &[Preset] = &[
    p("ollama", "http://127.0.0.1:11434/v1", false, true),
    p("llamacpp", "http://127.0.0.1:8080/v1", false, true),
    // vLLM refuses prompt + max_tokens beyond the model's length rather than stopping there.
    Preset {
        max_output_tokens: Some(8192),
        ..p("vllm", "http://127.0.0.1:8000/v1", false, true)
    },
    p("lmstudio", "http://127.0.0.1:1234/v1", false, true),
    cloud(
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        "gpt-oss-120b",
    ),
    cloud(
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "llama-3.3-70b-versatile",
    ),
    cloud(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
        "gemini-2.5-flash-lite",
    ),
    // Also needs CF_ACCOUNT_ID for its URL.
    cloud(
        "cloudflare",
        "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1",
        "CF_API_TOKEN",
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    ),
    cloud(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "meta-llama/llama-3.3-70b-instruct:free",
    ),
    cloud(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "mistral-small-latest",
    ),
    cloud(
        "github-models",
        "https://models.github.ai/inference",
        "GITHUB_TOKEN",
        "openai/gpt-4.1-mini",
    ),
    cloud(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_API_KEY",
        "meta/llama-3.3-70b-instruct",
    ),
    cloud(
        "sambanova",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
        "Meta-Llama-3.3-70B-Instruct",
    ),
    cloud(
        "huggingface",
        "https://router.huggingface.co/v1",
        "HF_TOKEN",
        "meta-llama/Llama-3.3-70B-Instruct",
    ),
    // Paid: never in the zero-config default, used only when a request allows premium.
    Preset {
        premium: true,
        ..p("openai", "https://api.openai.com/v1", true, false)
    },
    Preset {
        premium: true,
        kind: ProviderKind::Anthropic,
        key_env: Some("ANTHROPIC_API_KEY"),
        ..p("anthropic", "https://api.anthropic.com/v1", true, false)
    },
];

/// The output limit of a Claude model, from its name (Anthropic's models overview, checked on
/// `VERIFIED_ON`). Unknown names: `None`, the request's own `max_tokens` is sent.
pub fn anthropic_max_output(model: &str) -> Option<u64> {
    let m = model.to_ascii_lowercase();
    if !m.starts_with("claude") {
        return None;
    }
    Some(if m.starts_with("claude-3-haiku") || m.starts_with("claude-3-opus") {
        4096
    } else if m.starts_with("claude-3-5") {
        8192
    } else if m.starts_with("claude-opus-4-0")
        || m.starts_with("claude-opus-4-1")
        || m.starts_with("claude-opus-4-2025")
        || m == "claude-opus-4"
    {
        32000
    } else {
        // Sonnet 3.7 and 4.x, Haiku 4.5, Opus 4.5 and later.
        64000
    })
}

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn preset_names() -> String {
    PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// Budgets of a free tier (or of a config's `limits:` entry). Every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub rps: Option<u64>,
    pub rpm: Option<u64>,
    pub rph: Option<u64>,
    pub rpd: Option<u64>,
    pub tpm: Option<u64>,
    pub tph: Option<u64>,
    pub tpd: Option<u64>,
    pub tokens_per_month: Option<u64>,
    /// Cloudflare's unit; not counted here (it depends on the model), enforced through the
    /// provider's own 429.
    pub neurons_per_day: Option<u64>,
    /// The model's context window (tokens) on this tier.
    pub context: Option<u64>,
}

impl Limits {
    /// `over`'s values where it has them, else `self`'s.
    pub fn merged(self, over: Limits) -> Limits {
        Limits {
            rps: over.rps.or(self.rps),
            rpm: over.rpm.or(self.rpm),
            rph: over.rph.or(self.rph),
            rpd: over.rpd.or(self.rpd),
            tpm: over.tpm.or(self.tpm),
            tph: over.tph.or(self.tph),
            tpd: over.tpd.or(self.tpd),
            tokens_per_month: over.tokens_per_month.or(self.tokens_per_month),
            neurons_per_day: over.neurons_per_day.or(self.neurons_per_day),
            context: over.context.or(self.context),
        }
    }

    /// The counted budgets, as `(short name, value)`.
    pub fn budgets(&self) -> Vec<(&'static str, u64)> {
        [
            ("rps", self.rps),
            ("rpm", self.rpm),
            ("rph", self.rph),
            ("rpd", self.rpd),
            ("tpm", self.tpm),
            ("tph", self.tph),
            ("tpd", self.tpd),
            ("tokens_per_month", self.tokens_per_month),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// When a provider's daily (or monthly) budget starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    UtcMidnight,
    PacificMidnight,
    /// A sliding window (or a continuously refilled bucket): what was spent comes back 24 h
    /// (a month) after it was spent.
    Rolling,
    /// The calendar month (UTC).
    Monthly,
}

impl Reset {
    pub fn as_str(self) -> &'static str {
        match self {
            Reset::UtcMidnight => "utc_midnight",
            Reset::PacificMidnight => "pacific_midnight",
            Reset::Rolling => "rolling",
            Reset::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Reset> {
        Some(match s {
            "utc_midnight" => Reset::UtcMidnight,
            "pacific_midnight" => Reset::PacificMidnight,
            "rolling" => Reset::Rolling,
            "monthly" => Reset::Monthly,
            _ => return None,
        })
    }
}

/// What a provider's numbers count: each model separately, or the whole account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Model,
    Provider,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFacts {
    pub verified_on: String,
    pub source: String,
    pub per: Per,
    pub reset: Reset,
    #[serde(default)]
    pub limits: Limits,
    /// Model names or globs, first match wins; merged over `limits`.
    #[serde(default)]
    pub models: IndexMap<String, Limits>,
    pub note: Option<String>,
}

impl ProviderFacts {
    /// The free-tier limits of one model.
    pub fn limits_for(&self, model: &str) -> Limits {
        match self.models.iter().find(|(glob, _)| glob_match(glob, model)) {
            Some((_, l)) => self.limits.merged(*l),
            None => self.limits,
        }
    }
}

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    pub fn cost(&self, tokens_in: u64, tokens_out: u64) -> f64 {
        (tokens_in as f64 * self.input + tokens_out as f64 * self.output) / 1e6
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub verified_on: String,
    pub source: String,
    pub models: IndexMap<String, Price>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogData {
    providers: IndexMap<String, ProviderFacts>,
    prices: IndexMap<String, PriceTable>,
}

const CATALOG_YAML: &str = include_str!("../data/catalog.yaml");

fn data() -> &'static CatalogData {
    static DATA: OnceLock<CatalogData> = OnceLock::new();
    DATA.get_or_init(|| match serde_saphyr::from_str(CATALOG_YAML) {
        Ok(d) => d,
        // A test parses the file, so this cannot ship broken; if it ever did, quotas would
        // only be what the config states.
        Err(e) => {
            tracing::error!("the built-in provider catalog does not parse: {e}");
            CatalogData::default()
        }
    })
}

/// Free-tier facts of a preset, when it has a free tier on record.
pub fn facts(preset: &str) -> Option<&'static ProviderFacts> {
    data().providers.get(preset)
}

/// The price of a paid model, from the preset's price table.
pub fn price(preset: &str, model: &str) -> Option<(Price, &'static str)> {
    let table = data().prices.get(preset)?;
    table
        .models
        .iter()
        .find(|(glob, _)| glob_match(glob, model))
        .map(|(_, p)| (*p, table.verified_on.as_str()))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_catalog_parses_and_covers_the_free_presets() {
        let d: CatalogData = serde_saphyr::from_str(CATALOG_YAML).unwrap();
        for p in PRESETS.iter().filter(|p| !p.local) {
            assert!(d.providers.contains_key(p.name), "no catalog entry for `{}`", p.name);
        }
        for (name, f) in &d.providers {
            assert!(preset(name).is_some(), "catalog entry `{name}` is not a preset");
            assert_eq!(f.verified_on.len(), 10, "{name}: verified_on must be YYYY-MM-DD");
        }
        let groq = facts("groq").unwrap();
        assert_eq!(groq.per, Per::Model);
        assert_eq!(groq.limits_for("llama-3.1-8b-instant").rpd, Some(14_400));
        assert_eq!(facts("cloudflare").unwrap().reset, Reset::UtcMidnight);
        assert_eq!(facts("gemini").unwrap().reset, Reset::PacificMidnight);
        assert_eq!(facts("openrouter").unwrap().per, Per::Provider);
        let (p, _) = price("anthropic", "claude-sonnet-4-5").unwrap();
        assert!((p.cost(1_000_000, 1_000_000) - 18.0).abs() < 1e-9);
    }
}
