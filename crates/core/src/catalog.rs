//! Provider presets: what `preset: NAME` fills in (base URL, whether a key is needed, whether
//! the provider runs on the user's own hardware, whether it costs money).
//!
//! Facts from shared/research/providers.md §1 and §5, checked on the date below. Free-tier
//! limits are not here yet: quota accounting will add them as data with their own dates.

use crate::config::ProviderKind;

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
