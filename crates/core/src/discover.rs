//! What is reachable without any config: Ollama on its default address, and provider keys in
//! the environment. Used to build the zero-config default (DESIGN "No file at all is valid").

use crate::catalog::PRESETS;
use crate::config::{self, Config, ConfigError, Env};
use std::fmt::Write;
use std::time::Duration;

/// Chat models Ollama has, if it answers at `base` (e.g. `http://127.0.0.1:11434`) quickly.
pub async fn ollama_models(base: &str) -> Vec<String> {
    crate::upstream::install_crypto();
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_millis(800)).build() else {
        return Vec::new();
    };
    let Ok(resp) = client.get(format!("{base}/api/tags")).send().await else {
        return Vec::new();
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    v["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        // Embedding models cannot chat.
        .filter(|n| !n.contains("embed"))
        .map(str::to_owned)
        .collect()
}

fn lane_name(model: &str) -> String {
    let mut s = String::from("ollama-");
    for c in model.chars() {
        s.push(if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '-'
        });
    }
    s
}

/// The config used when there is no file: Ollama's models first (if it answers), then every
/// free cloud provider whose key is in the environment, then the embedded model, which is
/// always there. `private` is the same chain with only the local lanes.
pub fn zero_config_yaml(env: &Env, ollama: &[String]) -> String {
    let mut providers = String::new();
    let mut lanes = String::new();
    let mut local_chain = Vec::new();
    let mut chain = Vec::new();
    if !ollama.is_empty() {
        let _ = writeln!(
            providers,
            "  ollama: {{ preset: ollama, base_url: \"{}/v1\" }}",
            ollama_base(env)
        );
        for m in ollama {
            let name = lane_name(m);
            let _ = writeln!(
                lanes,
                "  {name}: {{ provider: ollama, model: {} }}",
                serde_json::Value::from(m.as_str())
            );
            chain.push(name.clone());
            local_chain.push(name);
        }
    }
    for p in PRESETS.iter().filter(|p| !p.premium) {
        let (Some(key), Some(model)) = (p.key_env, p.default_model) else {
            continue;
        };
        if env.get(key).is_none_or(|v| v.is_empty()) {
            continue;
        }
        let account = if p.base_url.contains("{account_id}") {
            if env.get("CF_ACCOUNT_ID").is_none_or(|v| v.is_empty()) {
                continue;
            }
            ", account_id: \"${CF_ACCOUNT_ID}\""
        } else {
            ""
        };
        let _ = writeln!(
            providers,
            "  {0}: {{ preset: {0}, api_key: \"${{{key}}}\"{account} }}",
            p.name
        );
        let _ = writeln!(
            lanes,
            "  {0}: {{ provider: {0}, model: {1} }}",
            p.name,
            serde_json::Value::from(model)
        );
        chain.push(p.name.to_owned());
    }
    providers.push_str("  local: { kind: embedded, model: gemma3-270m }\n");
    lanes.push_str("  local: { provider: local }\n");
    chain.push("local".into());
    local_chain.push("local".into());
    // A paid key makes a premium lane: last in `default`, where it is skipped unless a
    // request allows premium, and alone in the `premium` route, which is asking for it.
    let mut premium = String::new();
    if env.get("ANTHROPIC_API_KEY").is_some_and(|v| !v.is_empty()) {
        providers.push_str("  anthropic: { preset: anthropic, api_key: \"${ANTHROPIC_API_KEY}\" }\n");
        lanes.push_str("  claude: { provider: anthropic, model: claude-sonnet-4-5 }\n");
        chain.push("claude".into());
        premium.push_str("  premium: { chain: [claude], premium: true }\n");
    }
    // Claude Code names Claude models: its background requests (haiku) stay on this machine,
    // the rest take the default route.
    format!(
        "# Zero-config default: no config file was found.\nproviders:\n{providers}lanes:\n{lanes}routes:\n  default: [{}]\n  private: {{ chain: [{}], local_only: true }}\n{premium}\
         aliases:\n  \"claude-haiku-*\": private\n  \"claude-*\": default\n",
        chain.join(", "),
        local_chain.join(", ")
    )
}

/// Where Ollama listens: `$OLLAMA_HOST` (as Ollama itself reads it), else 127.0.0.1:11434.
pub fn ollama_base(env: &Env) -> String {
    match env.get("OLLAMA_HOST").filter(|h| !h.is_empty()) {
        Some(h) if h.starts_with("http://") || h.starts_with("https://") => h.trim_end_matches('/').to_owned(),
        Some(h) if h.contains(':') => format!("http://{h}"),
        Some(h) => format!("http://{h}:11434"),
        None => "http://127.0.0.1:11434".to_owned(),
    }
}

/// The zero-config default, resolved.
pub async fn zero_config(env: &Env) -> Result<Config, ConfigError> {
    let base = ollama_base(env);
    let ollama = ollama_models(&base).await;
    config::from_str(&zero_config_yaml(env, &ollama), "(zero-config default)", env)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_and_ollama_models_make_the_chain() {
        let env = Env::fixed([
            ("GROQ_API_KEY".to_owned(), "gsk".to_owned()),
            ("CF_API_TOKEN".to_owned(), "t".to_owned()),
        ]);
        let yaml = zero_config_yaml(&env, &["gemma3:27b".to_owned(), "qwen2.5-coder:7b".to_owned()]);
        let c = config::from_str(&yaml, "z", &env).unwrap();
        assert_eq!(
            c.routes["default"].chain,
            ["ollama-gemma3-27b", "ollama-qwen2.5-coder-7b", "groq", "local"]
        );
        assert_eq!(
            c.routes["private"].chain,
            ["ollama-gemma3-27b", "ollama-qwen2.5-coder-7b", "local"]
        );
        assert_eq!(c.lanes["ollama-gemma3-27b"].model, "gemma3:27b");
        assert!(c.providers["local"].embedded.is_some());
        // Cloudflare needs its account id too; without it, it is left out.
        assert!(!c.providers.contains_key("cloudflare"));

        let bare = config::from_str(&zero_config_yaml(&Env::fixed([]), &[]), "z", &Env::fixed([])).unwrap();
        assert_eq!(bare.routes["default"].chain, ["local"]);
        assert!(!bare.routes.contains_key("premium"));
        let aliases: Vec<_> = bare
            .aliases
            .iter()
            .map(|a| (a.pattern.as_str(), a.target.clone()))
            .collect();
        assert_eq!(
            aliases,
            [
                ("claude-haiku-*", config::Target::Route("private".into())),
                ("claude-*", config::Target::Route("default".into()))
            ]
        );

        let paid_env = Env::fixed([("ANTHROPIC_API_KEY".to_owned(), "sk-ant".to_owned())]);
        let paid = config::from_str(&zero_config_yaml(&paid_env, &[]), "z", &paid_env).unwrap();
        assert_eq!(paid.routes["default"].chain, ["local", "claude"]);
        assert!(paid.lanes["claude"].premium && paid.routes["premium"].premium);
        assert_eq!(paid.providers["anthropic"].kind, config::ProviderKind::Anthropic);
        assert_eq!(paid.lanes["claude"].max_output_tokens, Some(64000));
        assert_eq!(
            ollama_base(&Env::fixed([("OLLAMA_HOST".into(), "10.0.0.2".into())])),
            "http://10.0.0.2:11434"
        );
        assert_eq!(
            ollama_base(&Env::fixed([("OLLAMA_HOST".into(), "127.0.0.1:9".into())])),
            "http://127.0.0.1:9"
        );
    }
}
