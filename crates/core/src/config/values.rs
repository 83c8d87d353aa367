//! Small value languages of the config file: `${VAR}` expansion (with a `.env` beside the
//! file), durations (`30s`, `1m30s`, `250ms`), sizes (`32MiB`) and model-name globs.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Where `${VAR}` looks: the process environment first, then the `.env` beside the config.
#[derive(Debug, Default, Clone)]
pub struct Env {
    dotenv: HashMap<String, String>,
    /// Tests and `check` can run against a fixed environment instead of the process's.
    fixed: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment plus `dir/.env` when it exists.
    pub fn for_config_dir(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Env::default();
        if let Some(path) = dir.map(|d| d.join(".env")) {
            match std::fs::read_to_string(&path) {
                Ok(text) => env.dotenv = parse_dotenv(&text).map_err(|e| format!("{}:{e}", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
            }
        }
        Ok(env)
    }

    /// A fixed set of variables, nothing from the process.
    pub fn fixed(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Env {
            dotenv: HashMap::new(),
            fixed: Some(vars.into_iter().collect()),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .or_else(|| self.dotenv.get(name).cloned())
    }

    /// Replaces every `${VAR}` (or `${VAR:-default}`) in `s`. Returns the names of the
    /// variables that are unset (or empty) and have no default.
    pub fn expand(&self, s: &str) -> Result<String, Vec<String>> {
        let mut out = String::with_capacity(s.len());
        let mut missing = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n.trim(), Some(d)),
                None => (expr.trim(), None),
            };
            match (self.get(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(name.to_owned()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        if missing.is_empty() { Ok(out) } else { Err(missing) }
    }
}

/// `KEY=value` lines; `#` comments, blank lines, an optional `export ` and quotes allowed.
fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, String> {
    let mut vars = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{}:1: expected KEY=value", i + 1));
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            v.split(" #").next().unwrap_or(v).trim_end()
        };
        vars.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(vars)
}

/// `250ms`, `30s`, `2m`, `1h`, `1m30s`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let err = || format!("`{s}` is not a duration; write e.g. `500ms`, `30s`, `2m` or `1h`");
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(err())
        };
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| err())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[u_end..];
        total += Duration::from_secs_f64(n * unit);
    }
    Ok(total)
}

/// `33554432`, `32MiB`, `32MB`, `512KiB`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let err = || format!("`{s}` is not a size; write e.g. `32MiB`, `512KB` or a number of bytes");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| err())?;
    let mult: u64 = match s[split..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Shell-style glob with `*` (any run) and `?` (one character), matched on the whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn expansion() {
        let env = Env::fixed([("A".into(), "1".into()), ("E".into(), String::new())]);
        assert_eq!(env.expand("x${A}y${ A }").unwrap(), "x1y1");
        assert_eq!(env.expand("${B:-dflt}").unwrap(), "dflt");
        assert_eq!(
            env.expand("${B}-${E}").unwrap_err(),
            vec!["B".to_owned(), "E".to_owned()]
        );
        assert_eq!(
            env.expand("no vars, ${unterminated").unwrap(),
            "no vars, ${unterminated"
        );
    }

    #[test]
    fn dotenv_lines() {
        let vars = parse_dotenv("# c\nexport A=1\nB = \"two words\"\nC='x#y'\nD=val # note\n\n").unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x#y");
        assert_eq!(vars["D"], "val");
        assert!(parse_dotenv("novalue").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err() && parse_duration("").is_err() && parse_duration("-1").is_err());
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("big").is_err() && parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("claude-haiku-*", "claude-haiku-4-5"));
        assert!(glob_match("claude-*", "claude-"));
        assert!(glob_match("gpt-?o", "gpt-4o"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("claude-*", "gpt-4"));
        assert!(!glob_match("a*b", "acbd"));
    }
}
