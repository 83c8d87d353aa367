//! Provider presets: what `preset: NAME` fills in (base URL, whether a key is needed, whether
//! the provider runs on the user's own hardware, whether it costs money).
//!
//! Facts from shared/research/providers.md §1 and §5, checked on the date below. Free-tier
//! limits are not here yet: quota accounting will add them as data with their own dates.

pub const VERIFIED_ON: &str = "2026-11-24";

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// `{account_id}` is replaced by the provider's `account_id`.
    pub base_url: &'static str,
    pub needs_key: bool,
    pub local: bool,
    pub premium: bool,
    /// `None`: speaks the OpenAI dialect. `Some(why)`: this build cannot talk to it yet.
    pub unsupported: Option<&'static str>,
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
        key_env: None,
        default_model: None,
    }
}

const fn cloud(name: &'static str, base_url: &'static str, key_env: &'static str, model: &'static str) -> Preset {
    Preset {
        key_env: Some(key_env),
        default_model: Some(model),
        ..p(name, base_url, true, false)
    }
}

pub const PRESETS: &[Preset] = &[
    p("ollama", "http://127.0.0.1:11434/v1", false, true),
    p("llamacpp", "http://127.0.0.1:8080/v1", false, true),
    p("vllm", "http://127.0.0.1:8000/v1", false, true),
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
        unsupported: Some("the native Anthropic provider is not in this build yet"),
        ..p("anthropic", "https://api.anthropic.com/v1", true, false)
    },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn preset_names() -> String {
    PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}
