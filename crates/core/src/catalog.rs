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
}

const fn p(name: &'static str, base_url: &'static str, needs_key: bool, local: bool) -> Preset {
    Preset {
        name,
        base_url,
        needs_key,
        local,
        premium: false,
        unsupported: None,
    }
}

pub const PRESETS: &[Preset] = &[
    p("ollama", "http://127.0.0.1:11434/v1", false, true),
    p("llamacpp", "http://127.0.0.1:8080/v1", false, true),
    p("vllm", "http://127.0.0.1:8000/v1", false, true),
    p("lmstudio", "http://127.0.0.1:1234/v1", false, true),
    p("cerebras", "https://api.cerebras.ai/v1", true, false),
    p("groq", "https://api.groq.com/openai/v1", true, false),
    p(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        true,
        false,
    ),
    p(
        "cloudflare",
        "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1",
        true,
        false,
    ),
    p("openrouter", "https://openrouter.ai/api/v1", true, false),
    p("mistral", "https://api.mistral.ai/v1", true, false),
    p("github-models", "https://models.github.ai/inference", true, false),
    p("nvidia", "https://integrate.api.nvidia.com/v1", true, false),
    p("sambanova", "https://api.sambanova.ai/v1", true, false),
    p("huggingface", "https://router.huggingface.co/v1", true, false),
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
