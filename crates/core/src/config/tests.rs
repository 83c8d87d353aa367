#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]
use super::*;
use secrecy::ExposeSecret;

fn env() -> Env {
    Env::fixed([
        ("CEREBRAS_API_KEY".to_owned(), "csk-test".to_owned()),
        ("SWITCHYARD_KEY".to_owned(), "k1".to_owned()),
    ])
}

fn errors(text: &str) -> Vec<String> {
    match from_str(text, "t.yaml", &env()) {
        Err(ConfigError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

const DESIGN_EXAMPLE: &str = r#"
server:
  listen: 127.0.0.1:4000
  keys: [ "${SWITCHYARD_KEY}" ]
providers:
  local:      { kind: embedded, model: gemma3-270m }
  ollama:     { preset: ollama }
  cerebras:   { preset: cerebras,   api_key: "${CEREBRAS_API_KEY}" }
  gemini:     { preset: gemini,     api_key: "${GEMINI_API_KEY}" }
  cloudflare: { preset: cloudflare, api_key: "${CF_API_TOKEN}", account_id: "${CF_ACCOUNT_ID}" }
  anthropic:  { preset: anthropic,  api_key: "${ANTHROPIC_API_KEY}", premium: true }
  mybox:      { kind: openai, base_url: "http://10.0.0.5:8080/v1", local: true }
lanes:
  gemma-local: { provider: ollama,     model: "gemma3:27b-it-qat" }
  qwen-coder:  { provider: ollama,     model: "qwen2.5-coder:32b" }
  box:         { provider: mybox,      model: "m" }
  llama70-cb:  { provider: cerebras,   model: "llama-3.3-70b" }
  flash-lite:  { provider: gemini,     model: "gemini-2.5-flash-lite" }
  cf-llama:    { provider: cloudflare, model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast" }
  claude:      { provider: anthropic,  model: "claude-sonnet-4-5" }
routes:
  default:      [gemma-local, llama70-cb, flash-lite, cf-llama]
  brain_dump:   [gemma-local, llama70-cb]
  long_context: { chain: [flash-lite, gemma-local], when: { min_input_tokens: 24000 } }
  code:         [qwen-coder, claude]
  premium:      { chain: [claude], premium: true }
  private:      { chain: [gemma-local, box], local_only: true }
aliases:
  "claude-haiku-*": brain_dump
  "claude-*": default
limits:
  cerebras: { rpm: 30, tokens_per_day: 1000000, reset: rolling }
storage:
  ledger: "sqlite:///tmp/x/ledger.db"
"#;

#[test]
fn design_example_loads() {
    let c = from_str(DESIGN_EXAMPLE, "t.yaml", &env()).unwrap();
    assert_eq!(c.server.keys.len(), 1);
    assert_eq!(c.server.keys[0].expose_secret(), "k1");
    assert_eq!(c.providers["ollama"].base_url, "http://127.0.0.1:11434/v1");
    assert!(c.providers["ollama"].local && !c.providers["cerebras"].local);
    assert_eq!(
        c.providers["cerebras"].api_key.as_ref().unwrap().expose_secret(),
        "csk-test"
    );
    assert!(c.providers["cerebras"].disabled.is_none());
    // Unset variables disable a provider, they do not stop the gateway.
    assert!(
        c.providers["gemini"]
            .disabled
            .as_ref()
            .unwrap()
            .contains("GEMINI_API_KEY")
    );
    assert!(
        c.providers["cloudflare"]
            .disabled
            .as_ref()
            .unwrap()
            .contains("CF_ACCOUNT_ID")
    );
    let local = &c.providers["local"];
    assert!(local.disabled.is_none() && local.local && local.embedded.as_ref().unwrap().model == "gemma3-270m");
    assert!(c.lanes["claude"].premium && !c.routes["code"].premium && c.routes["premium"].premium);
    assert_eq!(
        c.routes["long_context"].when.as_ref().unwrap().min_input_tokens,
        Some(24000)
    );
    assert_eq!(
        c.routes["default"].chain,
        ["gemma-local", "llama70-cb", "flash-lite", "cf-llama"]
    );
    assert_eq!(c.aliases[0].target, Target::Route("brain_dump".into()));
    assert_eq!(c.storage.ledger, PathBuf::from("/tmp/x/ledger.db"));
    // `limits.cerebras` is merged over the preset's free tier, per model.
    let b = &c.budgets["cerebras/llama-3.3-70b"];
    assert_eq!(
        (b.limits.rpm, b.limits.tpd, b.limits.tpm),
        (Some(30), Some(1_000_000), Some(30_000))
    );
    assert_eq!(b.reset, crate::catalog::Reset::Rolling);
    assert!(b.source.starts_with("config over preset cerebras"), "{}", b.source);
    assert_eq!(c.lanes["llama70-cb"].budgets, ["cerebras/llama-3.3-70b"]);
    assert_eq!(c.lanes["llama70-cb"].context_window, Some(65_536));
    assert!(c.lanes["claude"].price.is_some(), "a premium preset lane has a price");
    let d = c.describe();
    assert!(
        d.contains("gemma-local (ollama/gemma3:27b-it-qat) -> llama70-cb"),
        "{d}"
    );
}

#[test]
fn unknown_key_names_place_and_valid_keys() {
    let e = errors("server:\n  listen: 127.0.0.1:1\n  lisen: 2\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t.yaml:3:3: unknown field `lisen`"), "{e:?}");
    assert!(
        e[0].contains("unknown field `lisen`") && e[0].contains("listen"),
        "{e:?}"
    );
    let e = errors("providers:\n  a: { preset: ollama, base_ur: x }\n");
    assert!(e[0].starts_with("t.yaml:2:") && e[0].contains("base_url"), "{e:?}");
}

#[test]
fn dangling_names_are_refused_with_the_valid_ones() {
    let text = "providers:\n  o: { preset: ollama }\nlanes:\n  qwen-coder: { provider: o, model: q }\n  x: { provider: nope, model: m }\nroutes:\n  default: [qwen-coder]\n  code:\n    - qwen-codr\naliases:\n  \"gpt-*\": nowhere\n";
    let e = errors(text);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:5:") && e[0].contains("provider `nope`") && e[0].contains("providers are: o"),
        "{e:?}"
    );
    assert_eq!(
        e[1],
        "t.yaml:9:7: lane `qwen-codr` in route `code` does not exist; lanes are: qwen-coder, x"
    );
    assert!(e[2].starts_with("t.yaml:11:") && e[2].contains("nowhere"), "{e:?}");
}

#[test]
fn local_only_route_with_cloud_lane_is_refused() {
    let text = "providers:\n  o: { preset: ollama }\n  c: { preset: groq, api_key: k }\nlanes:\n  a: { provider: o, model: m }\n  b: { provider: c, model: m }\nroutes:\n  default: { chain: [a, b], local_only: true }\n";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("t.yaml:8:") && e[0].contains("local_only") && e[0].contains("`b`"),
        "{e:?}"
    );
}

#[test]
fn bad_values_are_refused() {
    let e = errors(
        "server: { listen: \"nowhere\", max_body: lots, timeouts: { connect: soon } }\nproviders:\n  o: { preset: olama }\n",
    );
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(e[0].contains("no lanes are configured"));
    assert!(
        e.iter()
            .any(|m| m.contains("unknown preset `olama`") && m.contains("ollama"))
    );
    assert!(e.iter().any(|m| m.contains("not an address")));
    assert!(e.iter().any(|m| m.contains("not a size")));
    assert!(e.iter().any(|m| m.contains("not a duration")));
    let e = errors("routes: 5\n");
    assert!(e[0].starts_with("t.yaml:1:"), "{e:?}");
    let e = errors("routes:\n  default: 7\n");
    assert!(e[0].contains("list of lane names"), "{e:?}");
    assert!(errors("")[0].contains("no lanes"));
}

#[test]
fn route_and_lane_may_not_share_a_name() {
    let e = errors(
        "providers:\n  o: { preset: ollama }\nlanes:\n  x: { provider: o, model: m }\nroutes:\n  default: [x]\n  x: [x]\n",
    );
    assert!(e[0].contains("both a route and a lane"), "{e:?}");
}

#[test]
fn timeouts_inherit_server_defaults() {
    let c = from_str(
        "server: { timeouts: { connect: 2s, first_byte: 1m } }\nproviders:\n  o: { preset: ollama, timeouts: { first_byte: 500ms } }\n  p: { kind: openai, base_url: \"http://h/v1/\" }\nlanes:\n  a: { provider: o, model: m }\nroutes:\n  default: [a]\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let o = c.providers["o"].timeouts;
    assert_eq!(
        (o.connect, o.first_byte),
        (Duration::from_secs(2), Duration::from_millis(500))
    );
    assert_eq!(c.providers["p"].timeouts.first_byte, Duration::from_secs(60));
    assert_eq!(c.providers["p"].base_url, "http://h/v1");
}

#[test]
fn notify_targets_load_and_an_unset_url_turns_one_off() {
    let text = format!(
        "{DESIGN_EXAMPLE}notify:\n  \
         - {{ kind: slack,   url: \"${{SLACK_WEBHOOK_URL}}\", on: [fallback, quota_low, lane_down, lane_up] }}\n  \
         - {{ kind: webhook, url: \"http://127.0.0.1:9000/hook\", on: [fallback], quota_low: 25%, window: 30s }}\n  \
         - {{ kind: ntfy, url: \"https://ntfy.sh/my-topic\", headers: {{ Authorization: \"Bearer ${{SWITCHYARD_KEY}}\" }} }}\n"
    );
    let c = from_str(&text, "t.yaml", &env()).unwrap();
    assert_eq!(c.notify.len(), 2, "the Slack target has no URL and is off");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("notify target slack#1 is off: unset environment variable(s) SLACK_WEBHOOK_URL")),
        "{:?}",
        c.warnings
    );
    let hook = &c.notify[0];
    assert_eq!((hook.kind, hook.name.as_str()), (NotifyKind::Webhook, "webhook#2"));
    assert_eq!(hook.on, [EventKind::Fallback]);
    assert_eq!((hook.quota_low, hook.window), (0.25, Duration::from_secs(30)));
    let ntfy = &c.notify[1];
    assert_eq!(ntfy.on, EventKind::ALL, "every event by default");
    assert_eq!((ntfy.quota_low, ntfy.window), (0.1, Duration::from_secs(300)));
    assert_eq!(ntfy.headers[0].1.expose_secret(), "Bearer k1");
}

#[test]
fn bad_notify_entries_are_refused_with_what_would_be_valid() {
    let e = errors(
        "notify:\n  - { kind: teams, url: \"http://x\" }\n  - { kind: webhook, url: \"http://x\", on: [fallbak] }\n  - { kind: ntfy, url: \"ftp://x\", quota_low: 1.5 }\n",
    );
    let e: Vec<&String> = e.iter().filter(|m| m.contains("notify")).collect();
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:2:") && e[0].contains("unknown kind `teams`; kinds are: slack, webhook, ntfy"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("t.yaml:3:")
            && e[1].contains(
                "unknown event `fallbak`; events are: fallback, quota_low, quota_exhausted, lane_down, lane_up"
            ),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("quota_low `1.5` must be a share below 1")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("ntfy#3: `url` must start with http:// or https://")),
        "{e:?}"
    );
}

#[test]
fn mcp_allowed_hosts_load_and_bad_ones_are_refused() {
    const LANES: &str = "providers:\n  o: { preset: ollama }\nlanes:\n  a: { provider: o, model: m }\n";
    let load = |server: &str| from_str(&format!("server: {server}\n{LANES}"), "t.yaml", &env());
    let c = load("{ listen: 127.0.0.1:4000 }").unwrap();
    assert_eq!(c.server.mcp_allowed_hosts, None);
    let c = load("{ mcp_allowed_hosts: [Gateway.LAN, \"10.0.0.5:4000\"] }").unwrap();
    assert_eq!(
        c.server.mcp_allowed_hosts,
        Some(vec!["gateway.lan".to_owned(), "10.0.0.5:4000".to_owned()])
    );
    let c = load("{ mcp_allowed_hosts: [\"*\"] }").unwrap();
    assert_eq!(c.server.mcp_allowed_hosts, Some(vec![]));
    let e = errors(&format!(
        "server: {{ mcp_allowed_hosts: [\"http://gateway.lan/\", \"*\", x] }}\n{LANES}"
    ));
    assert!(
        e.iter().any(|m| m.contains("`http://gateway.lan/` is not a host")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("stands alone")), "{e:?}");
    let e = errors(&format!("server: {{ mcp_allowed_hosts: [] }}\n{LANES}"));
    assert!(e[0].starts_with("t.yaml:1:") && e[0].contains("is empty"), "{e:?}");
}
