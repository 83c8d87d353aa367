//! `switchyard check` and the refusals at start.

use crate::support::*;
use std::process::Command;

fn check(text: &str, dotenv: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.yaml");
    std::fs::write(&path, text).unwrap();
    if let Some(e) = dotenv {
        std::fs::write(dir.path().join(".env"), e).unwrap();
    }
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("GROQ_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_refuses_bad_configs_with_file_line_column() {
    let (code, _, err) = check(
        "providers:\n  o: { preset: ollama }\nlanes:\n  qwen-coder: { provider: o, model: q }\nroutes:\n  default: [qwen-coder]\n  code: [qwen-codr]\n",
        None,
    );
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "error: FILE:7:10: lane `qwen-codr` in route `code` does not exist; lanes are: qwen-coder"
    );
    let (code, _, err) = check("server:\n  listen: 127.0.0.1:4000\n  keyz: []\n", None);
    assert_eq!(code, 2);
    assert!(err.contains("FILE:3:3: unknown field `keyz`"), "{err}");
    let (code, _, err) = check(
        "providers:\n  o: { preset: ollama }\n  g: { preset: groq, api_key: k }\nlanes:\n  a: { provider: o, model: m }\n  b: { provider: g, model: m }\nroutes:\n  default: [a]\n  private: { chain: [a, b], local_only: true }\n",
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("FILE:9:") && err.contains("local_only"), "{err}");
}

#[test]
fn check_prints_resolved_routes_and_env_from_dotenv() {
    let text = "providers:\n  o: { preset: ollama }\n  g: { preset: groq, api_key: \"${GROQ_API_KEY}\" }\n  c: { preset: cerebras, api_key: \"${NOT_SET_ANYWHERE}\" }\nlanes:\n  a: { provider: o, model: \"gemma3:27b\" }\n  b: { provider: g, model: llama }\n  x: { provider: c, model: m }\nroutes:\n  default: [a, b, x]\n";
    let (code, out, err) = check(text, Some("GROQ_API_KEY=gsk_from_dotenv\n"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("default        a (o/gemma3:27b) -> b (g/llama) -> x (c/m) [disabled]"),
        "{out}"
    );
    assert!(
        out.contains("https://api.groq.com/openai/v1 [cloud]\n"),
        "groq is enabled by the .env key: {out}"
    );
    assert!(
        err.contains("provider `c` is disabled: unset environment variable(s) NOT_SET_ANYWHERE"),
        "{err}"
    );
    assert!(
        !out.contains("gsk_from_dotenv") && !err.contains("gsk_from_dotenv"),
        "keys are never printed"
    );
}

#[test]
fn serving_beyond_loopback_without_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "providers:\n  o: { preset: ollama }\nlanes:\n  a: { provider: o, model: m }\nroutes:\n  default: [a]\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen on 0.0.0.0:0 without keys"));
}

#[tokio::test]
async fn a_provider_with_a_missing_key_is_skipped_with_its_reason() {
    let b = FakeUpstream::start("b").await;
    let cfg = config_for(&[b.base_url()], "")
        .replace("lanes:\n", "  groq: { preset: groq, api_key: \"${UNSET_GROQ_KEY_FOR_TEST}\" }\nlanes:\n  fast: { provider: groq, model: llama }\n")
        .replace("default: [l0]", "default: [fast, l0]");
    let gw = Running::start(&cfg);
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), "fast:disabled,l0:ok");
    assert!(gw.stderr().contains("UNSET_GROQ_KEY_FOR_TEST"));
}

/// Every example config is valid as shipped, with no keys in the environment (their providers
/// are then disabled, not errors).
#[test]
fn every_example_config_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let out = Command::new(bin())
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("GEMINI_API_KEY")
            .env_remove("CEREBRAS_API_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(seen >= 3, "examples found: {seen}");
}
