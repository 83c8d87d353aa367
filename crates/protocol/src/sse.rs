//! Server-sent events: an incremental decoder that accepts bytes cut at any boundary, and the
//! small encoder the gateway writes answers with.
//!
//! The decoder follows the WHATWG event-stream rules that matter for LLM streams: lines end in
//! `\n`, `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a leading space after
//! the colon is dropped; comment lines (`:`) are ignored; an event is dispatched at a blank line.

/// One decoded event. `event` is the `event:` field when the stream names one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental decoder: feed it chunks as they arrive, collect the events it completes.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line being read (not yet terminated).
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one is part of it.
    skip_lf: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and appends every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        if bytes.is_empty() {
            return;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = bytes.split_at(pos);
            let is_cr = tail.first() == Some(&b'\r');
            let mut rest = &tail[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.line_done(head, out);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, out);
            }
            bytes = rest;
        }
        self.line.extend_from_slice(bytes);
    }

    /// Ends the stream: a final event that was not followed by a blank line is still returned,
    /// as browsers and the OpenAI SDK do.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
        }
        self.dispatch(out);
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields carry nothing the gateway needs.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.event = None;
    }
}

/// Appends one `data:` event. Data containing newlines is split over several `data:` lines,
/// which is how the format carries them.
pub fn encode_data(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn openai_stream_shape() {
        let s = b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n";
        let ev = decode_all(&[s]);
        let data: Vec<_> = ev.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["{\"a\":1}", "{\"a\":2}", "[DONE]"]);
    }

    #[test]
    fn named_events_comments_crlf_and_multiline() {
        let s = b": ping\r\nevent: message_start\r\ndata: x\r\ndata:y\r\n\r\nid: 3\nretry: 10\n\n";
        let ev = decode_all(&[s]);
        assert_eq!(
            ev,
            vec![SseEvent {
                event: Some("message_start".into()),
                data: "x\ny".into()
            }]
        );
    }

    #[test]
    fn last_event_without_blank_line_is_kept() {
        assert_eq!(decode_all(&[b"data: tail"]).len(), 1);
    }

    #[test]
    fn encode_roundtrip() {
        let mut buf = Vec::new();
        encode_data(&mut buf, Some("error"), "line1\nline2");
        encode_data(&mut buf, None, "[DONE]");
        let ev = decode_all(&[&buf]);
        assert_eq!(ev[0].event.as_deref(), Some("error"));
        assert_eq!(ev[0].data, "line1\nline2");
        assert_eq!(ev[1].data, "[DONE]");
    }

    proptest! {
        /// Cutting the same stream at arbitrary places never changes what is decoded.
        #[test]
        fn chunk_boundaries_do_not_matter(
            events in proptest::collection::vec(("[a-z{}\":, ]{0,20}", any::<bool>(), 0u8..3), 0..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            let endings: [&[u8]; 3] = [b"\n", b"\r\n", b"\r"];
            for (data, named, ending) in &events {
                let nl = endings[*ending as usize];
                if *named { stream.extend_from_slice(b"event: e"); stream.extend_from_slice(nl); }
                stream.extend_from_slice(b"data: ");
                stream.extend_from_slice(data.as_bytes());
                stream.extend_from_slice(nl);
                stream.extend_from_slice(nl);
            }
            let whole = decode_all(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&stream[last..p]); last = p; }
            chunks.push(&stream[last..]);
            prop_assert_eq!(decode_all(&chunks), whole.clone());
            prop_assert_eq!(whole.len(), events.len());
            for (ev, (data, named, _)) in whole.iter().zip(&events) {
                prop_assert_eq!(&ev.data, data);
                prop_assert_eq!(ev.event.is_some(), *named);
            }
        }
    }

    #[test]
    fn cr_split_from_lf_across_chunks() {
        let ev = decode_all(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(ev.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let _ = ev.first().unwrap();
    }
}
