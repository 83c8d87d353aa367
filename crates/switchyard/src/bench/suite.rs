//! The prompt suite of `switchyard bench`: the built-in one (`prompts.yaml`, compiled in) or a
//! file the user gives, and the reference checks that score an answer without a judge.
//!
//! What must stay true: a mistake in a prompt file is reported with the file, line and column
//! and what would be valid, before any lane is asked anything.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashSet;

/// The built-in suite: the plan's workloads (brain-dump summary, daily digest over a table of
/// counts, paragraph rewrite, a small coding task).
pub const BUILT_IN: &str = include_str!("prompts.yaml");

#[derive(Debug, Clone)]
pub struct Prompt {
    pub name: String,
    pub prompt: String,
    pub max_tokens: Option<u64>,
    pub checks: Vec<Check>,
}

/// One reference check on an answer.
#[derive(Debug, Clone)]
pub enum Check {
    /// The answer contains this text, ignoring case.
    Contains(String),
    /// The pattern matches somewhere in the answer (case-sensitive unless it says `(?i)`).
    Regex(regex::Regex),
    /// The answer has at most this many words.
    MaxWords(u64),
    /// The answer (without a Markdown code fence around it) is one JSON value.
    Json,
}

impl Check {
    pub fn passes(&self, answer: &str) -> bool {
        match self {
            Check::Contains(s) => answer.to_lowercase().contains(&s.to_lowercase()),
            Check::Regex(re) => re.is_match(answer),
            Check::MaxWords(n) => words(answer) as u64 <= *n,
            Check::Json => serde_json::from_str::<serde_json::Value>(strip_fence(answer)).is_ok(),
        }
    }

    /// As a person reads it: `contains "Lyon"`, `at most 80 words`.
    pub fn describe(&self) -> String {
        match self {
            Check::Contains(s) => format!("contains {s:?}"),
            Check::Regex(re) => format!("matches /{}/", re.as_str()),
            Check::MaxWords(n) => format!("at most {n} words"),
            Check::Json => "is JSON".to_owned(),
        }
    }
}

pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The text inside a Markdown code fence when the whole answer is one; else the answer.
pub fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    name: String,
    prompt: String,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawCheck {
    Contains(String),
    Regex(String),
    MaxWords(u64),
    Json(bool),
}

/// Reads a prompt file. `file` names it in errors (`prompts.yaml:3:5: …`).
pub fn parse(text: &str, file: &str) -> Result<Vec<Prompt>, String> {
    let raw: Vec<Spanned<RawPrompt>> = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        format!(
            "{file}:{line}:{column}: {}",
            switchyard_core::config::first_line_without_location(&e.to_string())
        )
    })?;
    if raw.is_empty() {
        return Err(format!(
            "{file}: no prompts; the file is a list of {{name, prompt, max_tokens?, checks?}} (see docs/bench.md)"
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for p in raw {
        let at = |l: serde_saphyr::Location| format!("{file}:{}:{}", l.line(), l.column());
        let where_ = at(p.referenced);
        let p_name = p.value.name.trim().to_owned();
        if p_name.is_empty() {
            return Err(format!("{where_}: a prompt needs a `name`"));
        }
        if !seen.insert(p_name.clone()) {
            return Err(format!(
                "{where_}: prompt name `{p_name}` is used twice; names must be unique"
            ));
        }
        if p.value.prompt.trim().is_empty() {
            return Err(format!("{where_}: prompt `{p_name}` has an empty `prompt`"));
        }
        if p.value.max_tokens == Some(0) {
            return Err(format!("{where_}: prompt `{p_name}`: `max_tokens` must be at least 1"));
        }
        let mut checks = Vec::new();
        for c in p.value.checks {
            let check = match c.value {
                RawCheck::Contains(s) if s.is_empty() => {
                    return Err(format!("{}: `contains` needs some text", at(c.referenced)));
                }
                RawCheck::Contains(s) => Check::Contains(s),
                RawCheck::Regex(s) => Check::Regex(regex::Regex::new(&s).map_err(|e| {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or_default().trim();
                    format!("{}: `regex` {s:?} is not a valid pattern: {why}", at(c.referenced))
                })?),
                RawCheck::MaxWords(n) => Check::MaxWords(n),
                RawCheck::Json(true) => Check::Json,
                RawCheck::Json(false) => continue,
            };
            checks.push(check);
        }
        out.push(Prompt {
            name: p_name,
            prompt: p.value.prompt,
            max_tokens: p.value.max_tokens,
            checks,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_built_in_suite_parses_and_covers_the_workloads() {
        let s = parse(BUILT_IN, "built-in").unwrap();
        let names: Vec<_> = s.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["brain_dump", "daily_digest", "rewrite", "code"]);
        assert!(s.iter().all(|p| !p.checks.is_empty() && p.max_tokens.is_some()));
    }

    /// A capable model's answers pass every reference check of the built-in suite; so the
    /// checks are not impossible. Each answer also fails when its key fact is wrong.
    #[test]
    fn good_answers_pass_the_built_in_checks_and_wrong_ones_do_not() {
        let s = parse(BUILT_IN, "built-in").unwrap();
        let good = [
            "- Call the dentist about the crown\n- Send Acme a reminder: the invoice is overdue\n\
             - Book train tickets to Lyon for the 14th\n- Buy milk and coffee\n\
             - Review Sam's pull request before Friday\n- Get the car's noise checked",
            "gemma-local served the most requests yesterday (412). In total the gateway answered \
             632 requests, 4 of them on the paid claude lane.",
            "Switchyard tries the local lanes first and moves to a free cloud lane as a fallback \
             only when a local one is down or out of quota; paid lanes are used only when asked.",
            "```python\ndef is_palindrome(s: str) -> bool:\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n```",
        ];
        for (p, a) in s.iter().zip(good) {
            for c in &p.checks {
                assert!(c.passes(a), "{}: {} fails on {a:?}", p.name, c.describe());
            }
        }
        let bad = [
            "Buy milk.",
            "flash-lite served the most requests; 500 in total.",
            &"This paragraph explains routing in a lot of words. ".repeat(20),
            "function isPalindrome(s) { return s === s.split('').reverse().join('') }",
        ];
        for (p, a) in s.iter().zip(bad) {
            assert!(
                p.checks.iter().any(|c| !c.passes(a)),
                "{}: every check passes on {a:?}",
                p.name
            );
        }
    }

    #[test]
    fn checks() {
        assert!(Check::Contains("LYON".into()).passes("to lyon"));
        assert!(!Check::Contains("Paris".into()).passes("to lyon"));
        assert!(Check::MaxWords(3).passes("one two  three"));
        assert!(!Check::MaxWords(2).passes("one two three"));
        assert!(Check::Json.passes("```json\n{\"a\": 1}\n```"));
        assert!(Check::Json.passes(" [1, 2] "));
        assert!(!Check::Json.passes("{a: 1}"));
        let re = Check::Regex(regex::Regex::new(r"def \w+\(").unwrap());
        assert!(re.passes("def f(x):"));
        assert!(!re.passes("fn f(x)"));
    }

    #[test]
    fn a_file_with_every_field() {
        let text = "- name: a\n  prompt: Say hi\n  max_tokens: 20\n  checks:\n    - contains: hi\n    - regex: '^h'\n    - max_words: 5\n    - json: true\n- name: b\n  prompt: x\n";
        let s = parse(text, "p.yaml").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].checks.len(), 4);
        assert_eq!(s[0].max_tokens, Some(20));
        assert!(s[1].checks.is_empty());
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let e = parse("- name: a\n  prompt: x\n  checks:\n    - containz: y\n", "p.yaml").unwrap_err();
        assert!(e.starts_with("p.yaml:4:"), "{e}");
        assert!(e.contains("containz") && e.contains("contains"), "{e}");
        let e = parse("- name: a\n  prompt: x\n  max_tokns: 3\n", "p.yaml").unwrap_err();
        assert!(e.starts_with("p.yaml:3:") && e.contains("max_tokns"), "{e}");
        let e = parse("- name: a\n  prompt: x\n  checks: [{regex: '(oops'}]\n", "p.yaml").unwrap_err();
        assert!(e.starts_with("p.yaml:3:") && e.contains("not a valid pattern"), "{e}");
        let e = parse("- name: a\n  prompt: x\n- name: a\n  prompt: y\n", "p.yaml").unwrap_err();
        assert!(e.starts_with("p.yaml:3:") && e.contains("twice"), "{e}");
        let e = parse("[]", "p.yaml").unwrap_err();
        assert!(e.contains("no prompts"), "{e}");
        let e = parse("- name: a\n", "p.yaml").unwrap_err();
        assert!(e.starts_with("p.yaml:") && e.contains("prompt"), "{e}");
    }
}
