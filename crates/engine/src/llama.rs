//! llama.cpp in-process: one worker thread owns the model and one context, and generates for
//! up to `slots` requests at once by batching their sequences into each decode call (as
//! llama-server's slots do), rather than serving them one after another.
//!
//! What must stay true:
//! - Only the worker thread touches llama.cpp objects (`LlamaContext` is not `Send`).
//! - Requests wait in a bounded queue; a full queue answers `Overloaded` at once, which the
//!   router treats as a reason to try the next lane.
//! - A request whose receiver is dropped (client gone) is cancelled at the next token and its
//!   sequence freed.
//! - Usage is counted exactly: prompt tokens as tokenized, completion tokens as sampled.

use crate::store;
use crate::text::{Fed, TextOut};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use switchyard_core::config::EmbeddedConfig;
use switchyard_core::local::{Finish, LocalEngine, LocalError, LocalEvent, LocalRequest};
use switchyard_protocol::openai::Usage;
use tokio::sync::mpsc;

/// Tokens decoded together per call, across all sequences.
const N_BATCH: usize = 512;
/// Sampling temperature when the request gives none. Lower than Gemma's suggested 1.0: the
/// default model is small, and at 1.0 its answers wander.
const DEFAULT_TEMPERATURE: f32 = 0.7;
/// Requests that may wait for a free slot before new ones are refused.
const QUEUE_PER_SLOT: usize = 8;

struct Job {
    req: LocalRequest,
    events: mpsc::Sender<LocalEvent>,
}

#[derive(Debug, Clone)]
enum State {
    Loading,
    Ready,
    Failed(String),
}

/// Handle to the engine; cheap to share. The model is fetched and loaded in the background
/// when the engine starts; requests that arrive meanwhile wait in the queue.
pub struct LlamaEngine {
    jobs: mpsc::Sender<Job>,
    state: Arc<Mutex<State>>,
    name: String,
    queue: usize,
}

impl LlamaEngine {
    /// Starts fetching (if needed) and loading the model. Must be called inside a tokio runtime.
    pub fn start(cfg: &EmbeddedConfig, show_progress: bool) -> Arc<LlamaEngine> {
        let queue = cfg.slots as usize * QUEUE_PER_SLOT;
        let (tx, rx) = mpsc::channel(queue);
        let state = Arc::new(Mutex::new(State::Loading));
        let engine = Arc::new(LlamaEngine {
            jobs: tx,
            state: state.clone(),
            name: cfg.model.clone(),
            queue,
        });
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let progress = store::Progress::new(show_progress);
            match store::pull(&cfg.model, &progress).await {
                Ok(path) => {
                    let spawned = std::thread::Builder::new()
                        .name("llama-worker".into())
                        .spawn(move || worker(path, cfg, rx, state.clone()));
                    if let Err(e) = spawned {
                        tracing::error!("cannot start the engine thread: {e}");
                    }
                }
                Err(e) => {
                    // The whole story (every source and why it failed) goes to the log; the
                    // requests get its first line.
                    tracing::error!("embedded model unavailable: {e}");
                    let first = e.lines().next().unwrap_or_default().trim_end_matches(':');
                    let short = format!("{first} (`switchyard models pull {}` shows why)", cfg.model);
                    fail_all(rx, &state, short);
                }
            }
        });
        engine
    }

    fn state(&self) -> State {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Waits until the model is loaded (or failed to). For `brain` and tests.
    pub async fn ready(&self) -> Result<(), String> {
        loop {
            match self.state() {
                State::Ready => return Ok(()),
                State::Failed(e) => return Err(e),
                State::Loading => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
}

fn set_state(state: &Mutex<State>, s: State) {
    match state.lock() {
        Ok(mut g) => *g = s,
        Err(p) => *p.into_inner() = s,
    }
}

fn fail_all(mut rx: mpsc::Receiver<Job>, state: &Mutex<State>, e: String) {
    set_state(state, State::Failed(e.clone()));
    rx.close();
    while let Ok(job) = rx.try_recv() {
        let _ = job
            .events
            .try_send(LocalEvent::Failed(LocalError::Unavailable(e.clone())));
    }
}

impl LocalEngine for LlamaEngine {
    fn generate(&self, req: LocalRequest) -> Result<mpsc::Receiver<LocalEvent>, LocalError> {
        if let State::Failed(e) = self.state() {
            return Err(LocalError::Unavailable(e));
        }
        let (tx, rx) = mpsc::channel(256);
        self.jobs.try_send(Job { req, events: tx }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LocalError::Overloaded(format!(
                "the embedded engine already has {} requests waiting",
                self.queue
            )),
            mpsc::error::TrySendError::Closed(_) => LocalError::Unavailable("the embedded engine has stopped".into()),
        })?;
        Ok(rx)
    }

    fn model(&self) -> &str {
        &self.name
    }
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| format!("llama.cpp backend: {e}"))?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(Clone::clone)
}

struct Slot {
    seq: i32,
    events: mpsc::Sender<LocalEvent>,
    /// `None`: greedy, taken straight from the logits.
    sampler: Option<LlamaSampler>,
    /// Prompt tokens not yet decoded.
    prompt: Vec<LlamaToken>,
    prompt_tokens: u64,
    /// Tokens in this sequence's KV cache.
    n_past: i32,
    /// The token to decode next once the prompt is in.
    next: Option<LlamaToken>,
    generated: u64,
    max_tokens: u64,
    stops: Vec<String>,
    /// The first `caller_stops` of `stops` are the caller's own; the rest are the prompt
    /// format's (a caller's stop ends the answer as `stop_sequence`).
    caller_stops: usize,
    ignore_eos: bool,
    text: TextOut,
    /// Text produced but not yet accepted by the client's channel.
    unsent: String,
    /// Index in the current batch whose logits belong to this slot.
    logits_at: Option<i32>,
    /// Visible text has been produced.
    started: bool,
}

fn worker(path: PathBuf, cfg: EmbeddedConfig, mut rx: mpsc::Receiver<Job>, state: Arc<Mutex<State>>) {
    let loaded = (|| {
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        Ok::<_, String>((backend, model))
    })();
    let (backend, model) = match loaded {
        Ok(x) => x,
        Err(e) => return fail_all(rx, &state, e),
    };
    let threads = cfg.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
        |t| t as i32,
    );
    let slots_n = cfg.slots.max(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cfg.context_size.saturating_mul(slots_n)))
        .with_n_batch(N_BATCH as u32)
        .with_n_seq_max(slots_n)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => return fail_all(rx, &state, format!("cannot create a llama.cpp context: {e}")),
    };
    let template = chat_template(&model);
    tracing::info!(model = %path.display(), threads, slots = slots_n, ctx = cfg.context_size, "embedded model loaded");
    set_state(&state, State::Ready);

    let mut slots: Vec<Option<Slot>> = (0..slots_n).map(|_| None).collect();
    let mut batch = LlamaBatch::new(N_BATCH, slots_n as i32);
    loop {
        // Take new work: wait when idle, otherwise only what is already queued.
        while let Some(free) = slots.iter().position(Option::is_none) {
            let job = if slots.iter().any(Option::is_some) {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(j) => j,
                    None => return, // the gateway is gone
                }
            };
            if let Some(slot) = admit(job, free as i32, &model, template.as_ref(), &cfg, &mut ctx) {
                slots[free] = Some(slot);
            }
        }

        // Drop requests whose client went away.
        for s in slots.iter_mut() {
            if s.as_ref().is_some_and(|slot| slot.events.is_closed())
                && let Some(slot) = s.take()
            {
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            }
        }
        if slots.iter().all(Option::is_none) {
            continue;
        }

        // One batch: each generating sequence adds its next token; prompts fill what is left.
        batch.clear();
        let mut room = N_BATCH;
        for slot in slots.iter_mut().flatten() {
            slot.logits_at = None;
            if slot.prompt.is_empty()
                && let Some(tok) = slot.next
                && batch.add(tok, slot.n_past, &[slot.seq], true).is_ok()
            {
                slot.logits_at = Some(batch.n_tokens() - 1);
                slot.n_past += 1;
                room -= 1;
            }
        }
        for slot in slots.iter_mut().flatten() {
            if slot.prompt.is_empty() || room == 0 {
                continue;
            }
            let take = slot.prompt.len().min(room);
            let last_chunk = take == slot.prompt.len();
            for (i, tok) in slot.prompt.drain(..take).enumerate() {
                let logits = last_chunk && i == take - 1;
                if batch.add(tok, slot.n_past, &[slot.seq], logits).is_err() {
                    break;
                }
                slot.n_past += 1;
                if logits {
                    slot.logits_at = Some(batch.n_tokens() - 1);
                }
            }
            room -= take;
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        if let Err(e) = ctx.decode(&mut batch) {
            for s in slots.iter_mut() {
                if let Some(slot) = s.take() {
                    let _ = slot.events.try_send(LocalEvent::Failed(LocalError::Unavailable(format!(
                        "llama.cpp decode failed: {e}"
                    ))));
                    let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                }
            }
            continue;
        }

        // Sample for every sequence that got logits.
        for s in slots.iter_mut() {
            let Some(slot) = s.as_mut() else { continue };
            let Some(at) = slot.logits_at else { continue };
            let tok = match slot.sampler.as_mut() {
                Some(sampler) => sampler.sample(&ctx, at),
                None => argmax(ctx.get_logits_ith(at)),
            };
            let finish = step(slot, tok, &model, cfg.context_size);
            if flush(slot).is_err() {
                // Client gone: cancelled below on the next round.
                continue;
            }
            if let Some(finish) = finish
                && let Some(slot) = s.take()
            {
                finish_slot(slot, finish, &mut ctx);
            }
        }
    }
}

/// Prepares a request: prompt through the chat template, tokenized, checked against the window.
fn admit(
    job: Job,
    seq: i32,
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    cfg: &EmbeddedConfig,
    ctx: &mut LlamaContext,
) -> Option<Slot> {
    let fail = |e: LocalError| {
        let _ = job.events.try_send(LocalEvent::Failed(e));
        None
    };
    let (prompt, format_stops) = match render(model, template, &job.req) {
        Ok(p) => p,
        Err(e) => return fail(LocalError::Unavailable(e)),
    };
    let vocab = model.vocab();
    // The rendered template may already start with BOS; adding another confuses the model.
    let bos_text = vocab
        .text(vocab.bos())
        .and_then(|c| c.to_str().ok())
        .unwrap_or("<bos>")
        .to_owned();
    let add_bos = !prompt.starts_with(&bos_text);
    let tokens = vocab.tokenize(prompt.as_bytes(), add_bos, true);
    tracing::debug!(seq, tokens = tokens.len(), add_bos, prompt = %prompt, "prompt");
    let window = cfg.context_size as usize;
    if tokens.len() + 1 >= window {
        return fail(LocalError::ContextOverflow(format!(
            "the prompt is {} tokens, longer than the embedded model's context of {window} tokens (set `context_size` on the provider)",
            tokens.len()
        )));
    }
    let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    let room = (window - tokens.len()) as u64;
    let r = &job.req;
    let sampler = match r.temperature {
        Some(t) if t <= 0.0 => None,
        t => Some(LlamaSampler::chain_simple([
            LlamaSampler::top_k(64),
            LlamaSampler::top_p(r.top_p.unwrap_or(0.95), 1),
            LlamaSampler::temp(t.unwrap_or(DEFAULT_TEMPERATURE)),
            LlamaSampler::dist(r.seed.unwrap_or_else(rand_seed)),
        ])),
    };
    Some(Slot {
        seq,
        events: job.events,
        sampler,
        prompt_tokens: tokens.len() as u64,
        prompt: tokens,
        n_past: 0,
        next: None,
        generated: 0,
        max_tokens: r.max_tokens.map_or(room, |m| u64::from(m).min(room)),
        stops: if r.ignore_eos {
            r.stop.clone()
        } else {
            r.stop.iter().cloned().chain(format_stops).collect()
        },
        caller_stops: r.stop.len(),
        ignore_eos: r.ignore_eos,
        text: TextOut::default(),
        unsent: String::new(),
        logits_at: None,
        started: false,
    })
}

/// The GGUF's own chat template. A file without one is taken for a base (pretrained, not
/// instruction-tuned) model, which is prompted as a transcript instead (see [`render`]).
fn chat_template(model: &LlamaModel) -> Option<llama_cpp_2::model::LlamaChatTemplate> {
    let t = model.chat_template(None).ok();
    if t.is_none() {
        tracing::info!("the model file has no chat template: prompting it as a base model, with a transcript");
    }
    t
}

/// Greedy choice: the first token with the highest logit (as llama.cpp's greedy sampler picks).
/// Done here rather than through a sampler, which would first copy the whole vocabulary
/// (262,144 entries for Gemma 3) into a candidate array for every token.
fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            best = (i, l);
        }
    }
    LlamaToken::new(best.0 as i32)
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// The prompt for a request, and stop sequences the prompt format itself needs.
///
/// With a chat template (instruction-tuned models) that is the template's rendering. Without
/// one the model is a base model: it continues text rather than following turns, so it gets a
/// short transcript with one worked example, ends at the next turn marker, and answers in the
/// transcript's style. (The default `gemma3-270m` file is such a base model.)
fn render(
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    req: &LocalRequest,
) -> Result<(String, Vec<String>), String> {
    if let Some(t) = template {
        let msgs = req
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("a message cannot be passed to the model: {e}"))?;
        let prompt = model
            .apply_chat_template(t, &msgs, true)
            .map_err(|e| format!("chat template failed: {e}"))?;
        return Ok((prompt, Vec::new()));
    }
    // A blank line ends the answer too: a base model tends to go on with a new topic.
    let stops = ["\n\n", "\nUser:", "\nAssistant:"].map(str::to_owned).to_vec();
    Ok((transcript(req), stops))
}

/// A base model's prompt: instructions, one worked example, then the conversation.
fn transcript(req: &LocalRequest) -> String {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect();
    let mut s = String::from("A conversation between a user and a helpful, accurate assistant who answers briefly.\n");
    if !system.is_empty() {
        s.push_str(&system.join("\n"));
        s.push('\n');
    }
    s.push_str("\nUser: What is the capital of Japan?\nAssistant: The capital of Japan is Tokyo.\n");
    for m in req.messages.iter().filter(|m| m.role != "system") {
        let who = if m.role == "assistant" { "Assistant" } else { "User" };
        s.push_str(&format!("\n{who}: {}\n", m.content.trim()));
    }
    s.push_str("\nAssistant:");
    s
}

/// Takes one sampled token. Returns how the answer ends, if it does.
fn step(slot: &mut Slot, tok: LlamaToken, model: &LlamaModel, window: u32) -> Option<Finish> {
    let vocab = model.vocab();
    if vocab.is_eog(tok) && !slot.ignore_eos {
        return Some(Finish::Stop);
    }
    slot.generated += 1;
    let piece = if vocab.is_eog(tok) {
        Vec::new()
    } else {
        vocab.token_to_piece(tok, false, None)
    };
    let (text, stopped) = match slot.text.feed(&piece, &slot.stops) {
        Fed::Text(t) => (t, None),
        Fed::Stop(t, which) => (t, Some(which)),
    };
    // The answer starts at its first visible character (a transcript prompt ends in
    // "Assistant:", so the model's first piece begins with a space).
    let text = if slot.started { text.as_str() } else { text.trim_start() };
    slot.started |= !text.is_empty();
    slot.unsent.push_str(text);
    if let Some(which) = stopped {
        return Some(match slot.stops.get(which) {
            Some(s) if which < slot.caller_stops => Finish::StopSequence(s.clone()),
            _ => Finish::Stop,
        });
    }
    if slot.generated >= slot.max_tokens || slot.n_past as u64 + 1 >= u64::from(window) {
        return Some(Finish::Length);
    }
    slot.next = Some(tok);
    None
}

/// Sends pending text without ever blocking the worker: a slow reader keeps its text until
/// its channel has room. `Err` when the client has gone.
fn flush(slot: &mut Slot) -> Result<(), ()> {
    if slot.unsent.is_empty() {
        return Ok(());
    }
    match slot.events.try_send(LocalEvent::Text(std::mem::take(&mut slot.unsent))) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(LocalEvent::Text(t))) => {
            slot.unsent = t;
            Ok(())
        }
        Err(_) => Err(()),
    }
}

fn finish_slot(mut slot: Slot, finish: Finish, ctx: &mut LlamaContext) {
    let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
    let mut rest = std::mem::take(&mut slot.unsent);
    let held = slot.text.finish();
    rest.push_str(if slot.started { &held } else { held.trim_start() });
    let usage = Usage {
        prompt_tokens: slot.prompt_tokens,
        completion_tokens: slot.generated,
        total_tokens: slot.prompt_tokens + slot.generated,
    };
    let events = slot.events.clone();
    // The end of an answer is small and must not be lost to a momentarily full channel:
    // hand it to a thread that may wait for the reader.
    std::thread::spawn(move || {
        if !rest.is_empty() && events.blocking_send(LocalEvent::Text(rest)).is_err() {
            return;
        }
        let _ = events.blocking_send(LocalEvent::Done { finish, usage });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_highest_logit() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), LlamaToken::new(1));
        assert_eq!(argmax(&[-5.0]), LlamaToken::new(0));
    }
}
