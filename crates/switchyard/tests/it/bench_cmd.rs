//! `switchyard bench` end to end: the real binary against fake upstreams (one answering, one
//! failing), a prompt file with checks that pass and fail on the fake's "hello from NAME",
//! the files it writes, the lanes it picks, and its refusals.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

async fn bench(args: &[&str], dir: &Path) -> Output {
    tokio::process::Command::new(bin())
        .arg("bench")
        .args(args)
        .current_dir(dir)
        .env_remove("SWITCHYARD_CONFIG")
        .env("SWITCHYARD_LOG", "warn")
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `config` (with the ledger in `dir`) and returns its path.
fn write_config(dir: &Path, config: &str) -> String {
    let path = dir.join("switchyard.yaml");
    let ledger = dir.join("ledger.db");
    std::fs::write(
        &path,
        format!("{config}\nstorage:\n  ledger: \"{}\"\n", ledger.display()),
    )
    .unwrap();
    path.display().to_string()
}

const PROMPTS: &str = "\
- name: greet
  prompt: Say hello.
  max_tokens: 20
  checks:
    - contains: hello from
    - contains: goodbye
- name: shape
  prompt: Reply in JSON.
  checks:
    - json: true
    - max_words: 5
    - regex: '^hello'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_each_lane_counts_failures_and_writes_the_report() {
    let good = FakeUpstream::start("good").await;
    good.set(Behavior::Slow(std::time::Duration::from_millis(20)));
    let bad = FakeUpstream::start("bad").await;
    bad.set(Behavior::status(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_for(&[good.base_url(), bad.base_url()], ""));
    std::fs::write(dir.path().join("prompts.yaml"), PROMPTS).unwrap();
    let o = bench(
        &[
            "--config",
            &config,
            "--prompts",
            "prompts.yaml",
            "--runs",
            "2",
            "--out",
            "out",
        ],
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");

    // Every request was a real one, to one lane, streamed, with the prompt's limit; local
    // lanes first get one unmeasured request that loads their model.
    assert_eq!(good.hits(), 1 + 4);
    assert!(stderr.contains("warming up `l0`"), "{stderr}");
    assert_eq!(good.requests()[0].body["max_tokens"], 1);
    let sent = good.requests();
    let greet = sent
        .iter()
        .find(|r| r.body["messages"][0]["content"] == "Say hello.")
        .unwrap();
    assert_eq!(greet.body["model"], "m0");
    assert_eq!(greet.body["stream"], true);
    assert_eq!(greet.body["max_tokens"], 20);
    assert!(bad.hits() >= 1, "the failing lane was asked");

    // stdout: the table and where the files are; progress went to stderr.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("LANE") && lines[0].contains("QUALITY"), "{stdout}");
    let l0 = lines.iter().find(|l| l.starts_with("l0 ")).unwrap();
    let l1 = lines.iter().find(|l| l.starts_with("l1 ")).unwrap();
    assert!(
        l0.contains(" 0/4 ") && l0.contains("5.8/10") && l0.contains("6/10"),
        "{l0}"
    );
    assert!(l1.contains(" 4/4 ") && l1.contains("0.0/10"), "{l1}");
    assert!(stdout.contains("report: out/report.md"), "{stdout}");
    assert!(!stdout.contains("[1/8]"), "{stdout}");
    assert!(stderr.contains("[1/8] lane l0 · prompt greet · run 1/2:"), "{stderr}");
    assert!(
        stderr.contains("[8/8] lane l1 · prompt shape · run 2/2: failed"),
        "{stderr}"
    );

    let out = dir.path().join("out");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["runs"], 2);
    let lanes = results["lanes"].as_array().unwrap();
    assert_eq!(lanes.len(), 2);
    let (s0, s1) = (&lanes[0]["summary"], &lanes[1]["summary"]);
    assert_eq!(lanes[0]["lane"], "l0");
    assert_eq!((s0["requests"].as_u64(), s0["failures"].as_u64()), (Some(4), Some(0)));
    assert_eq!((s1["requests"].as_u64(), s1["failures"].as_u64()), (Some(4), Some(4)));
    // The fake streams "hello from good" slowly: three tokens, the last two 20 ms apart at
    // least, so every speed is there and finite.
    assert!(s0["ttft_p50_ms"].as_f64().unwrap() > 0.0);
    assert!(s0["decode_tps_p50"].as_f64().unwrap() > 0.0);
    assert!(s0["total_p50_ms"].as_f64().unwrap() >= s0["ttft_p50_ms"].as_f64().unwrap());
    assert!(s0["ttft_p90_ms"].as_f64().is_some());
    assert_eq!(
        (s0["tokens_in"].as_u64(), s0["tokens_out"].as_u64()),
        (Some(28), Some(12))
    );
    // greet passes `contains hello from` and fails `goodbye` (quality 5); shape fails json
    // and passes max_words and the regex (6.7).
    assert_eq!(
        (s0["checks_passed"].as_u64(), s0["checks_total"].as_u64()),
        (Some(6), Some(10))
    );
    let r0 = &lanes[0]["results"];
    let greet0 = r0.as_array().unwrap().iter().find(|r| r["prompt"] == "greet").unwrap();
    assert_eq!(greet0["answer"], "hello from good");
    assert_eq!(greet0["quality"], 5.0);
    assert_eq!(greet0["checks"][1]["passed"], false);
    assert!(lanes[1]["results"][0]["error"].as_str().is_some());
    assert_eq!(s1["quality"], 0.0);
    assert!((s0["quality"].as_f64().unwrap() - (5.0 + 20.0 / 3.0) / 2.0).abs() < 1e-9);

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("![speed and quality of each lane](chart.svg)"));
    assert!(
        report.contains("| `l0` (local) | p0 / m0 |") && report.contains("| `l1` (local) | p1 / m1 |"),
        "{report}"
    );
    assert!(
        report.contains("### greet") && report.contains("✗ contains \"goodbye\""),
        "{report}"
    );
    assert!(report.contains("hello from good"), "{report}");
    assert!(report.contains("TTFT p90"), "{report}");
    let svg = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains(">l0<") && svg.contains(">l1<") && svg.contains("4/4 failed"),
        "{svg}"
    );
    assert!(svg.contains("no answer"), "l1 has no bars: {svg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_usable_lane_but_not_premium_or_disabled_ones() {
    let a = FakeUpstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "providers:\n\
             \x20 p0: {{ kind: openai, base_url: \"{u}\", api_key: k, local: true }}\n\
             \x20 paid: {{ kind: openai, base_url: \"{u}\", api_key: k, premium: true }}\n\
             \x20 gone: {{ kind: openai, base_url: \"{u}\", api_key: \"${{SWITCHYARD_BENCH_TEST_UNSET}}\" }}\n\
             lanes:\n\
             \x20 l0: {{ provider: p0, model: m0 }}\n\
             \x20 pricey: {{ provider: paid, model: big }}\n\
             \x20 off: {{ provider: gone, model: m }}\n\
             routes:\n\
             \x20 default: [l0, off]\n",
            u = a.base_url()
        ),
    );
    std::fs::write(dir.path().join("p.yaml"), "- name: one\n  prompt: hi\n").unwrap();
    let o = bench(&["-c", &config, "--prompts", "p.yaml", "--out", "o"], dir.path()).await;
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("not benching `pricey`: premium (paid): add --premium"),
        "{stderr}"
    );
    assert!(stderr.contains("not benching `off`: disabled"), "{stderr}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("o/results.json")).unwrap()).unwrap();
    let benched: Vec<&str> = results["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lane"].as_str().unwrap())
        .collect();
    assert_eq!(benched, ["l0"]);
    let skipped: Vec<&str> = results["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lane"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["pricey", "off"]);
    // No checks: nothing to score the answer by.
    assert_eq!(results["lanes"][0]["summary"]["quality"], Value::Null);
    assert_eq!(a.hits(), 2, "only l0 was asked (a warm-up and the prompt)");

    // Asked for, premium lanes run.
    let o = bench(
        &[
            "-c",
            &config,
            "--prompts",
            "p.yaml",
            "--out",
            "o2",
            "--premium",
            "--lanes",
            "pricey",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(a.last_chat().body["model"], "big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_refused_before_anything_runs() {
    let a = FakeUpstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_for(
            &[a.base_url()],
            "  premium: { chain: [pricey], premium: true }\n",
        )
        .replace(
            "lanes:\n",
            &format!(
                "  paid: {{ kind: openai, base_url: \"{}\", api_key: k, premium: true }}\nlanes:\n  pricey: {{ provider: paid, model: big }}\n",
                a.base_url()
            ),
        ),
    );
    std::fs::write(dir.path().join("ok.yaml"), "- name: one\n  prompt: hi\n").unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "- name: one\n  prompt: hi\n  checks:\n    - containz: x\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--prompts", "bad.yaml"], "error: bad.yaml:4:"),
        (&["--prompts", "missing.yaml"], "error: cannot read missing.yaml"),
        (
            &["--prompts", "ok.yaml", "--lanes", "l0,nope"],
            "error: lane `nope` does not exist; lanes are: pricey, l0",
        ),
        (
            &["--prompts", "ok.yaml", "--lanes", "pricey"],
            "error: lane `pricey` (--lanes) is premium (paid): add --premium",
        ),
        (
            &["--prompts", "ok.yaml", "--judge", "nope"],
            "error: judge lane `nope` does not exist",
        ),
        (
            &["--prompts", "ok.yaml", "--lanes", "l0", "--judge", "pricey"],
            "error: lane `pricey` (--judge) is premium",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["-c", config.as_str(), "--out", "never"];
        all.extend_from_slice(args);
        let o = bench(&all, dir.path()).await;
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let bad = text(
        &bench(&["-c", &config, "--prompts", "bad.yaml"], dir.path())
            .await
            .stderr,
    );
    assert!(
        bad.contains("containz") && bad.contains("contains"),
        "says what is valid: {bad}"
    );
    assert!(!dir.path().join("never").exists());
    assert_eq!(a.hits(), 0);
}

/// No config at all: the embedded lane (the deterministic fake engine here) with the built-in
/// suite, into `./switchyard-bench-<time>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_config_it_benches_the_embedded_lane_on_the_built_in_suite() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin());
    crate::brain::isolated(&mut cmd, home.path());
    cmd.env("SWITCHYARD_ENGINE", "fake").args(["bench", "--runs", "1"]);
    let o = tokio::process::Command::from(cmd).output().await.unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warming up `local`"), "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("local ")), "{stdout}");
    let out: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("switchyard-bench-")
        })
        .collect();
    assert_eq!(out.len(), 1, "{stdout}");
    for f in ["report.md", "results.json", "chart.svg"] {
        assert!(out[0].join(f).is_file(), "{f}");
    }
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out[0].join("results.json")).unwrap()).unwrap();
    assert_eq!(results["config"], "zero-config default");
    assert_eq!(results["suite"], "built-in suite");
    let prompts: Vec<&str> = results["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["brain_dump", "daily_digest", "rewrite", "code"]);
    assert_eq!(results["lanes"][0]["lane"], "local");
    assert_eq!(results["lanes"][0]["summary"]["failures"], 0);
}
