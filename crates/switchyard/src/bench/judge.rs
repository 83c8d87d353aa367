//! Quality by a judge lane: the question put to it, and reading its verdict.
//!
//! Models asked for "only JSON" still wrap it in prose or a code fence, give the score as a
//! string or "7/10", or forget a quote. The reader takes the first JSON object with a
//! `score`, then falls back to patterns; a verdict it cannot read is reported as such, never
//! guessed.

use super::suite::Prompt;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// 1 (useless) to 10 (excellent).
    pub score: f64,
    pub reason: String,
}

/// The question for the judge about one answer.
pub fn question(prompt: &Prompt, answer: &str) -> String {
    let mut q = String::from("You are grading an AI assistant's answer to a task.\n\n<task>\n");
    q.push_str(prompt.prompt.trim());
    q.push_str("\n</task>\n\n<answer>\n");
    q.push_str(answer.trim());
    q.push_str("\n</answer>\n\n");
    if !prompt.checks.is_empty() {
        q.push_str("A good answer, among other things: ");
        let checks: Vec<String> = prompt.checks.iter().map(super::suite::Check::describe).collect();
        q.push_str(&checks.join("; "));
        q.push_str(".\n\n");
    }
    q.push_str(
        "Score the answer from 1 (useless or wrong) to 10 (correct, complete, follows every \
         instruction). Reply with one line of JSON and nothing else, in exactly this form:\n\
         {\"score\": 7, \"reason\": \"one short sentence\"}",
    );
    q
}

/// Reads a judge's reply; `None` when no score from 1 to 10 can be found in it.
pub fn parse(reply: &str) -> Option<Verdict> {
    // A line break inside a JSON string is invalid JSON, and a common slip: try again without.
    from_json(reply)
        .or_else(|| from_json(&reply.replace(['\n', '\r', '\t'], " ")))
        .or_else(|| from_patterns(reply))
}

fn from_json(reply: &str) -> Option<Verdict> {
    for (i, _) in reply.match_indices('{') {
        let mut stream = serde_json::Deserializer::from_str(&reply[i..]).into_iter::<serde_json::Value>();
        let Some(Ok(v)) = stream.next() else {
            continue;
        };
        let Some(score) = score_of(&v["score"]) else {
            continue;
        };
        let reason = match &v["reason"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        return Some(Verdict {
            score,
            reason: one_line(&reason),
        });
    }
    None
}

fn score_of(v: &serde_json::Value) -> Option<f64> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.split('/').next()?.trim().parse().ok()?,
        _ => return None,
    };
    in_range(n)
}

/// Scores outside 1..=10 are not on the scale asked for (a percentage, a 0–5 scale …): not
/// rescaled, since which scale the judge meant cannot be known.
fn in_range(n: f64) -> Option<f64> {
    (1.0..=10.0).contains(&n).then_some(n)
}

static SCORE: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r#"(?i)"?score"?\s*[:=]\s*"?(\d+(?:\.\d+)?)"#).ok());
static OUT_OF_TEN: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"\b(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b").ok());
static REASON: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r#"(?i)"?reason"?\s*[:=]\s*"?([^"\n}]*)"#).ok());

fn from_patterns(reply: &str) -> Option<Verdict> {
    let capture = |re: &LazyLock<Option<regex::Regex>>| {
        re.as_ref()
            .and_then(|re| re.captures(reply))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
    };
    let score = capture(&SCORE)
        .or_else(|| capture(&OUT_OF_TEN))
        .and_then(|s| s.parse().ok())
        .and_then(in_range)?;
    let reason = capture(&REASON).unwrap_or_default();
    Some(Verdict {
        score,
        reason: one_line(reason.trim().trim_end_matches(',')),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn v(score: f64, reason: &str) -> Option<Verdict> {
        Some(Verdict {
            score,
            reason: reason.into(),
        })
    }

    #[test]
    fn strict_json() {
        assert_eq!(
            parse(r#"{"score": 7, "reason": "Mostly right."}"#),
            v(7.0, "Mostly right.")
        );
    }

    #[test]
    fn json_wrapped_in_prose_or_a_fence() {
        assert_eq!(
            parse(
                "Sure! Here is my grading:\n```json\n{\"score\": 9,\n \"reason\": \"Correct and\n concise.\"}\n```\nHope it helps."
            ),
            v(9.0, "Correct and concise.")
        );
        // A brace in the prose before the verdict is not the verdict.
        assert_eq!(
            parse(r#"The task {asks for a list}. {"reason": "ok", "score": "8/10"}"#),
            v(8.0, "ok")
        );
        assert_eq!(parse(r#"{"score": 6.5}"#), v(6.5, ""));
    }

    #[test]
    fn broken_json_falls_back_to_patterns() {
        assert_eq!(
            parse(r#"{"score": 4, "reason": "misses the total"#),
            v(4.0, "misses the total")
        );
        assert_eq!(parse("score: 3\nreason: wrong lane named"), v(3.0, "wrong lane named"));
        assert_eq!(parse("I would give this 8/10."), v(8.0, ""));
        assert_eq!(parse("Rating: 5 out of 10"), v(5.0, ""));
    }

    #[test]
    fn no_score_or_one_off_the_scale_is_no_verdict() {
        assert_eq!(parse("The answer is good."), None);
        assert_eq!(parse(r#"{"score": 85, "reason": "x"}"#), None);
        assert_eq!(parse(r#"{"score": 0, "reason": "x"}"#), None);
        assert_eq!(parse(r#"{"score": "high"}"#), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn the_question_carries_the_task_the_answer_and_the_checks() {
        let p = super::super::suite::parse(
            "- name: a\n  prompt: Name the capital of France.\n  checks: [{contains: Paris}]\n",
            "p",
        )
        .unwrap();
        let q = question(&p[0], "Lyon");
        assert!(q.contains("Name the capital of France.") && q.contains("<answer>\nLyon\n</answer>"));
        assert!(q.contains("contains \"Paris\""));
        assert!(q.contains(r#"{"score": 7, "reason": "one short sentence"}"#));
    }
}
