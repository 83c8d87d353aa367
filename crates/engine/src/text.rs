//! Turning a model's token pieces into text the client can be sent: whole UTF-8 characters
//! only, and nothing that might turn out to be the start of a stop sequence.

/// Accumulates token bytes and releases text that is safe to send.
#[derive(Debug, Default)]
pub struct TextOut {
    /// Bytes of an incomplete UTF-8 character.
    bytes: Vec<u8>,
    /// Decoded text not yet released (it may be the start of a stop sequence).
    held: String,
}

/// What feeding a piece produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// Text to send now (may be empty).
    Text(String),
    /// A stop sequence was hit: send this text, then end the answer. The index is the stop's
    /// place in the list given (the earliest match in the text wins).
    Stop(String, usize),
}

impl TextOut {
    pub fn feed(&mut self, piece: &[u8], stops: &[String]) -> Fed {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => {
                // Invalid (not just incomplete) bytes: replace them rather than stall forever.
                let text = String::from_utf8_lossy(&self.bytes).into_owned();
                self.bytes.clear();
                self.held.push_str(&text);
                return self.release(stops);
            }
            Err(e) => e.valid_up_to(),
        };
        let rest = self.bytes.split_off(valid);
        // `valid` bytes were checked above.
        self.held.push_str(&String::from_utf8_lossy(&self.bytes));
        self.bytes = rest;
        self.release(stops)
    }

    fn release(&mut self, stops: &[String]) -> Fed {
        if let Some((at, which)) = stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|at| (at, i)))
            .min()
        {
            let text = self.held[..at].to_owned();
            self.held.clear();
            return Fed::Stop(text, which);
        }
        // Hold back the longest tail that is a prefix of some stop sequence.
        let mut keep_from = self.held.len();
        for s in stops {
            for (i, _) in self.held.char_indices() {
                if i < keep_from && s.starts_with(&self.held[i..]) {
                    keep_from = i;
                    break;
                }
            }
        }
        let rest = self.held.split_off(keep_from);
        Fed::Text(std::mem::replace(&mut self.held, rest))
    }

    /// The end of the answer: whatever is held is text after all.
    pub fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.held);
        if !self.bytes.is_empty() {
            s.push_str(&String::from_utf8_lossy(&self.bytes));
            self.bytes.clear();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&[u8]], stops: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut t = TextOut::default();
        let mut out = String::new();
        for p in pieces {
            match t.feed(p, &stops) {
                Fed::Text(s) => out.push_str(&s),
                Fed::Stop(s, _) => {
                    out.push_str(&s);
                    return (out, true);
                }
            }
        }
        out.push_str(&t.finish());
        (out, false)
    }

    #[test]
    fn multibyte_characters_split_across_pieces_come_out_whole() {
        let e = "é".as_bytes();
        let mut t = TextOut::default();
        assert_eq!(t.feed(&e[..1], &[]), Fed::Text(String::new()));
        assert_eq!(t.feed(&e[1..], &[]), Fed::Text("é".into()));
        assert_eq!(run(&[b"caf", &e[..1], &e[1..], b"!"], &[]), ("café!".into(), false));
    }

    #[test]
    fn stop_sequences_end_the_text_even_across_pieces() {
        assert_eq!(
            run(&[b"Hello", b" wor", b"ld\nmore"], &["\n"]),
            ("Hello world".into(), true)
        );
        assert_eq!(run(&[b"a END", b"ING b"], &["ENDING"]), ("a ".into(), true));
        // Which stop matched: the one earliest in the text.
        let stops = ["zz".to_owned(), "b".to_owned(), "a".to_owned()];
        assert_eq!(TextOut::default().feed(b"xbya", &stops), Fed::Stop("x".into(), 1));
        // A near miss is released at the end.
        assert_eq!(run(&[b"a END", b"IN"], &["ENDING"]), ("a ENDIN".into(), false));
        let mut t = TextOut::default();
        assert_eq!(t.feed(b"x EN", &["ENDING".to_owned()]), Fed::Text("x ".into()));
    }

    #[test]
    fn invalid_bytes_do_not_stall() {
        assert_eq!(run(&[b"a\xff", b"b"], &[]), ("a\u{fffd}b".into(), false));
    }
}
