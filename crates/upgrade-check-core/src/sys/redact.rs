//! The one place secrets are taken out of text: everything the harness
//! writes or prints passes through here.
//!
//! A secret is matched in every form a service or a library may give it back
//! in: as written, JSON-escaped (also with Python's `\uXXXX` escapes),
//! percent-encoded (upper or lower case hex, `+` for a space; as the harness
//! itself sends it in a path or a query, which leaves `@ / & = +` raw; as a
//! form body encodes it; and percent-encoded twice), as HTML entities, in
//! hex, and base64 (standard and URL-safe, at any alignment inside a longer
//! encoded string, as in `Authorization: Basic …`).
//!
//! Redaction is idempotent: a placeholder is never redacted again, even when
//! the secret is a word of it (`password` in `[secret:password]`), so text
//! redacted once or twice compares equal. Secrets are registered once, process
//! wide, as soon as they are known; every writer (`state::write_atomic`,
//! the service log pump, stdout and progress) scrubs with [`scrub`], so a
//! writer cannot forget a secret it was not told about.
//!
//! This module never decides what is a secret; callers register values.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::sync::{LazyLock, OnceLock, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine;

/// Encoded forms (percent, base64) are matched only for secrets at least this
/// long: shorter ones would match random text in every body.
const MIN_ENCODED_LEN: usize = 6;

/// Values to take out of text, each with its placeholder, in all their forms.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// (form, placeholder), deduplicated by form.
    forms: Vec<(String, String)>,
    /// Built on first use: a set is often extended twice before it scrubs
    /// anything, and building the automaton costs more than most scrubs.
    matcher: OnceLock<Option<AhoCorasick>>,
}

impl Secrets {
    /// `named` values become `[secret:name]` (empty values are ignored).
    pub fn new<'a>(named: impl IntoIterator<Item = (&'a str, &'a str)>) -> Secrets {
        let mut secrets = Secrets::default();
        for (name, value) in named {
            secrets.add(&format!("[secret:{name}]"), value, true);
        }
        secrets
    }

    /// Adds `value` (and, when `encoded`, its encoded forms) as `placeholder`.
    fn add(&mut self, placeholder: &str, value: &str, encoded: bool) {
        if value.is_empty() {
            return;
        }
        let mut forms = vec![
            value.to_owned(),
            json_escaped(value),
            python_json_escaped(value),
        ];
        if encoded && value.len() >= MIN_ENCODED_LEN {
            let percent = percent_encoded(value);
            forms.extend(percent.iter().map(|form| form.replace('%', "%25")));
            forms.extend(percent);
            forms.extend(html_escaped(value));
            forms.extend(hex_forms(value.as_bytes()));
            forms.extend(base64_forms(value.as_bytes()));
        }
        // The placeholder stands for itself: a match there is the whole
        // placeholder (leftmost first), so it is never redacted again.
        forms.push(placeholder.to_owned());
        for form in forms {
            if !form.is_empty() && !self.forms.iter().any(|(known, _)| *known == form) {
                self.forms.push((form, placeholder.to_owned()));
            }
        }
        self.matcher = OnceLock::new();
    }

    /// Merges `other`'s forms into this set.
    pub fn extend(&mut self, other: &Secrets) {
        for (form, placeholder) in &other.forms {
            if !self.forms.iter().any(|(known, _)| known == form) {
                self.forms.push((form.clone(), placeholder.clone()));
            }
        }
        self.matcher = OnceLock::new();
    }

    /// Literal values (paths of the run's private folders) as `[name]`, raw
    /// and JSON-escaped only: they are not secret, just different per run.
    pub fn with_literals<'a>(
        mut self,
        literals: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Secrets {
        for (name, value) in literals {
            self.add(&format!("[{name}]"), value, false);
        }
        self
    }

    /// The automaton over every form; `None` when there is nothing to match.
    fn matcher(&self) -> Option<&AhoCorasick> {
        self.matcher
            .get_or_init(|| {
                (!self.forms.is_empty()).then(|| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostLongest)
                        // A DFA takes 5-10 times longer to build, and each
                        // scenario run's normaliser builds one; the NFA
                        // scrubs a megabyte of log no slower (its prefilter
                        // skips what cannot match).
                        .kind(Some(AhoCorasickKind::ContiguousNFA))
                        .build(self.forms.iter().map(|(form, _)| form.as_bytes()))
                        .expect("literal patterns always build")
                })
            })
            .as_ref()
    }

    /// The longest form, in bytes: how much text a streaming scrub holds back.
    fn longest(&self) -> usize {
        self.forms
            .iter()
            .map(|(form, _)| form.len())
            .max()
            .unwrap_or(0)
    }

    /// `text` with every form of every secret replaced.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.matcher() {
            Some(matcher) if matcher.is_match(text) => {
                let placeholders: Vec<&str> = self.forms.iter().map(|(_, p)| p.as_str()).collect();
                Cow::Owned(matcher.replace_all(text, &placeholders))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// [`Secrets::redact`] for bytes that need not be UTF-8.
    pub fn redact_bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        match self.matcher() {
            Some(matcher) if matcher.is_match(bytes) => {
                let placeholders: Vec<&[u8]> =
                    self.forms.iter().map(|(_, p)| p.as_bytes()).collect();
                Cow::Owned(matcher.replace_all_bytes(bytes, &placeholders))
            }
            _ => Cow::Borrowed(bytes),
        }
    }

    /// Whether `text` holds any form of a secret (a placeholder is none).
    pub fn found_in(&self, text: &[u8]) -> bool {
        self.matcher().is_some_and(|matcher| {
            matcher.find_iter(text).any(|found| {
                let (form, placeholder) = &self.forms[found.pattern().as_usize()];
                form != placeholder
            })
        })
    }

    /// Scrubs `pending` up to where no match can still be cut off by bytes yet
    /// to come; appends the result to `out` and returns how much was consumed.
    /// At the end of the stream (`last`), everything is consumed.
    fn redact_prefix(&self, pending: &[u8], last: bool, out: &mut Vec<u8>) -> usize {
        let Some(matcher) = self.matcher() else {
            out.extend_from_slice(pending);
            return pending.len();
        };
        // A match starting before `cut` ends inside `pending`: no form is longer.
        let mut cut = if last {
            pending.len()
        } else {
            pending.len().saturating_sub(self.longest() - 1)
        };
        let mut at = 0;
        for found in matcher.find_iter(pending) {
            if found.start() >= cut {
                break;
            }
            out.extend_from_slice(&pending[at..found.start()]);
            out.extend_from_slice(self.forms[found.pattern().as_usize()].1.as_bytes());
            at = found.end();
            cut = cut.max(at);
        }
        out.extend_from_slice(&pending[at..cut]);
        cut
    }
}

/// Every secret the run knows of; see [`register`].
static REGISTERED: LazyLock<RwLock<Secrets>> = LazyLock::new(|| RwLock::new(Secrets::default()));

/// Registers secrets for the rest of the process: every later write scrubs them.
pub fn register(secrets: &Secrets) {
    REGISTERED
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .extend(secrets);
}

/// Every registered secret, for a scrub that must also see the run's own.
pub fn registered() -> Secrets {
    REGISTERED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `text` without any registered secret.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    match secrets.redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

/// `bytes` without any registered secret.
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let secrets = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    match secrets.redact_bytes(bytes) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

/// Text fit for a terminal: every escape sequence (CSI colours, OSC titles,
/// clipboard writes and hyperlinks, …) and control character removed, tabs
/// and newlines kept. Service output must never drive the reader's terminal.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    static SEQUENCE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(concat!(
            r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?",     // OSC … BEL or ST
            r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?",         // DCS, PM, APC, SOS … ST
            r"|\x1b\[[0-?]*[ -/]*[@-~]?",              // CSI
            r"|\x1b[ -/]*[0-~]?",                      // other escapes
            r"|[\x00-\x08\x0b-\x1f\x7f\u{80}-\u{9f}]", // C0 (not \t \n) and C1 controls
        ))
        .expect("valid regex")
    });
    SEQUENCE.replace_all(text, "")
}

/// Text fit for a file a person opens in a terminal or a pull request's
/// comment (snapshots, report.md, JUnit, HTML): every control character but
/// tab and newline written as a visible escape (`\x1b`, `\u{9b}`), so that a
/// service's answer can neither drive a terminal nor hide text, and what it
/// sent is still there to read.
pub fn visible(text: &str) -> Cow<'_, str> {
    let hidden = |ch: char| ch.is_control() && ch != '\n' && ch != '\t';
    if !text.contains(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            ch if !hidden(ch) => out.push(ch),
            '\r' => out.push_str("\\r"),
            ch if (ch as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", ch as u32)),
            ch => out.push_str(&format!("\\u{{{:x}}}", ch as u32)),
        }
    }
    Cow::Owned(out)
}

/// Copies a service's output from `reader` to `log` until the stream ends:
/// scrubbed of every registered secret as it is written (raw output never
/// reaches the disk), and cut after `cap` bytes with a line saying so.
/// Memory stays bounded whatever the service prints.
///
/// Returns the first write error, so that a log that could not be written is
/// reported rather than silently incomplete.
pub fn pump_log(mut reader: impl Read, mut log: impl Write, cap: u64) -> std::io::Result<()> {
    let secrets = registered();
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut written: u64 = 0;
    let mut dropped: u64 = 0;
    let mut scrubbed = Vec::new();
    let mut failure = None;
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        let last = read == 0;
        if written >= cap {
            // Past the cap only counting is left: nothing is kept in memory.
            dropped += read as u64;
        } else {
            pending.extend_from_slice(&chunk[..read]);
            scrubbed.clear();
            let consumed = secrets.redact_prefix(&pending, last, &mut scrubbed);
            pending.drain(..consumed);
            let room = usize::try_from(cap - written).unwrap_or(usize::MAX);
            let keep = scrubbed.len().min(room);
            dropped += (scrubbed.len() - keep) as u64;
            if keep < scrubbed.len() {
                dropped += pending.len() as u64;
                pending.clear();
            }
            if failure.is_none()
                && let Err(err) = log.write_all(&scrubbed[..keep])
            {
                failure = Some(err);
            }
            written += keep as u64;
        }
        if last {
            break;
        }
    }
    if dropped > 0 && failure.is_none() {
        let note = format!(
            "\n[upgrade-check: log cut at {} bytes; {dropped} more bytes not kept]\n",
            cap
        );
        failure = log.write_all(note.as_bytes()).err();
    }
    if failure.is_none() {
        failure = log.flush().err();
    }
    failure.map_or(Ok(()), Err)
}

/// As serde_json writes the value inside a JSON string.
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned()
}

/// As Python's `json.dumps` writes it by default: non-ASCII as `\uXXXX`.
fn python_json_escaped(value: &str) -> String {
    let mut out = String::new();
    for ch in json_escaped(value).chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Percent-encoded forms: upper and lower case hex, with `%20` or `+` for
/// spaces; as a URL's path and query carry it when the harness sends it
/// there (the URL parser's own encoding, which leaves most punctuation raw);
/// as a form body carries it.
fn percent_encoded(value: &str) -> Vec<String> {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let upper = percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string();
    let lower = lower_hex_escapes(&upper);
    let mut forms = vec![upper.clone(), lower.clone()];
    if value.contains(' ') {
        forms.push(upper.replace("%20", "+"));
        forms.push(lower.replace("%20", "+"));
    }
    forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    for prefix in ["http://h/", "http://h/?"] {
        if let Ok(url) = url::Url::parse(&format!("{prefix}{value}"))
            && let Some(sent) = url.as_str().strip_prefix(prefix)
        {
            forms.push(sent.to_owned());
            forms.push(lower_hex_escapes(sent));
        }
    }
    forms.retain(|form| form != value);
    forms.dedup();
    forms
}

/// As HTML escapers write it: Python's `html.escape` (`&quot;`, `&#x27;`),
/// and Jinja's and Go's (`&#34;`, `&#39;`).
fn html_escaped(value: &str) -> Vec<String> {
    let escape = |quote: &str, apostrophe: &str| {
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', quote)
            .replace('\'', apostrophe)
    };
    let mut forms = vec![escape("&quot;", "&#x27;"), escape("&#34;", "&#39;")];
    forms.retain(|form| form != value);
    forms.dedup();
    forms
}

/// The bytes in hex, lower and upper case.
fn hex_forms(bytes: &[u8]) -> Vec<String> {
    let lower = hex::encode(bytes);
    vec![lower.to_ascii_uppercase(), lower]
}

fn lower_hex_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(ch) = chars.next() {
        out.push(ch);
        if ch == '%' {
            out.extend(chars.by_ref().take(2).map(|hex| hex.to_ascii_lowercase()));
        }
    }
    out
}

/// The characters of the base64 encoding of `bytes` that depend on `bytes`
/// alone, for each of the three alignments the bytes can have inside a longer
/// encoded string, in the standard and URL-safe alphabets.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    let engines = [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms = Vec::new();
    for engine in engines {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let start = (offset * 8).div_ceil(6);
            let end = (shifted.len() * 8) / 6;
            if end > start {
                let form = encoded[start..end].to_owned();
                if !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::new([("password", "p@ss wörd/42"), ("pin", "739184")])
    }

    #[test]
    fn every_form_of_a_secret_is_replaced() {
        let s = secrets();
        for text in [
            "p@ss wörd/42",
            "p@ss w\\u00f6rd/42",
            "p%40ss%20w%C3%B6rd%2F42",
            "p%40ss%20w%c3%b6rd%2f42",
            "p%40ss+w%C3%B6rd%2F42",
        ] {
            assert_eq!(s.redact(text), "[secret:password]", "{text}");
        }
        assert_eq!(
            s.redact("{\"739184\": 739184}"),
            "{\"[secret:pin]\": [secret:pin]}"
        );
    }

    #[test]
    fn the_forms_the_harness_sends_and_escapers_write_are_replaced() {
        let s = Secrets::new([("wire", "p@ss w/rd&x=1+é")]);
        for text in [
            // In a path or a query, as the URL parser encodes it.
            "p@ss%20w/rd&x=1+%C3%A9",
            "p@ss%20w/rd&x=1+%c3%a9",
            // A form body.
            "p%40ss+w%2Frd%26x%3D1%2B%C3%A9",
            // Percent-encoded twice.
            "p%2540ss%2520w%252Frd%2526x%253D1%252B%25C3%25A9",
            // HTML entities.
            "p@ss w/rd&amp;x=1+é",
            // Hex.
            "7040737320772f726426783d312bc3a9",
            "7040737320772F726426783D312BC3A9",
        ] {
            assert_eq!(s.redact(&format!("<{text}>")), "<[secret:wire]>", "{text}");
        }
    }

    #[test]
    fn a_secret_that_is_a_word_of_its_placeholder_is_redacted_once() {
        for value in ["password", "secret", "pass"] {
            let s = Secrets::new([("password", value)]);
            let once = s.redact(&format!("{value} and {value}")).into_owned();
            assert_eq!(once, "[secret:password] and [secret:password]");
            assert_eq!(s.redact(&once), once, "redacting again changes nothing");
            assert!(!s.found_in(once.as_bytes()), "a placeholder is no secret");
        }
    }

    proptest::proptest! {
        /// Any secret built from the characters that need escaping, in any
        /// form the harness sends or a service echoes, is gone after one
        /// redaction, and a second changes nothing.
        #[test]
        fn every_encoding_of_any_secret_is_redacted_idempotently(
            value in r#"[a-zA-Z0-9@/&=+ %é"'<>#?;:,~\\\[\]{}|^`$!*()-]{6,24}"#
        ) {
            let s = Secrets::new([("generated", value.as_str())]);
            let mut sent = Vec::new();
            for prefix in ["http://h/", "http://h/?q="] {
                let url = url::Url::parse(&format!("{prefix}{value}")).unwrap();
                sent.push(url.as_str()["http://h".len()..].to_owned());
            }
            let wire = sent.clone();
            sent.push(value.clone());
            sent.extend(percent_encoded(&value));
            sent.extend(percent_encoded(&value).iter().map(|form| form.replace('%', "%25")));
            sent.extend(html_escaped(&value));
            sent.extend(hex_forms(value.as_bytes()));
            sent.push(json_escaped(&value));
            for form in &sent {
                let text = format!("before {form} after");
                let once = s.redact(&text).into_owned();
                proptest::prop_assert!(
                    !once.contains(value.as_str()) || !text.contains(value.as_str()),
                    "{form:?} left {value:?} in {once:?}"
                );
                proptest::prop_assert_eq!(s.redact(&once).into_owned(), once.clone());
                proptest::prop_assert!(!s.found_in(once.as_bytes()), "{:?} in {:?}", form, once);
            }
            // What the URL parser sent, whole, is one placeholder, not a
            // mix of pieces: a path form is only split by the parser where
            // the value itself is (at `?` or `#`).
            for (form, url) in wire.iter().zip(["/", "/?q="]) {
                if !value.contains(['?', '#', '\\', '.']) {
                    let text = format!("{url}{}", &form[url.len()..]);
                    proptest::prop_assert_eq!(
                        s.redact(&text).into_owned(),
                        format!("{url}[secret:generated]")
                    );
                }
            }
        }
    }

    #[test]
    fn base64_is_found_at_any_alignment_inside_a_longer_encoding() {
        let s = secrets();
        for prefix in ["", "a", "ab", "alice:"] {
            for engine in [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ] {
                let encoded = engine.encode(format!("{prefix}p@ss wörd/42 and more"));
                let redacted = s.redact(&encoded);
                assert!(
                    redacted.contains("[secret:password]"),
                    "{prefix}: {redacted}"
                );
            }
        }
    }

    #[test]
    fn a_streamed_log_is_scrubbed_across_chunk_boundaries_and_capped() {
        let secret = "correct horse battery staple";
        let s = Secrets::new([("phrase", secret)]);
        register(&s);
        // A reader that hands out one byte at a time cuts every secret.
        struct Dribble(Vec<u8>, usize);
        impl Read for Dribble {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1 >= self.0.len() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        let text = format!("start {secret} middle {secret}end\n").repeat(3);
        let mut log = Vec::new();
        pump_log(Dribble(text.clone().into_bytes(), 0), &mut log, 1 << 20).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log, text.replace(secret, "[secret:phrase]"));

        let mut capped = Vec::new();
        pump_log(&vec![b'x'; 10_000][..], &mut capped, 1000).unwrap();
        let capped = String::from_utf8(capped).unwrap();
        assert!(capped.starts_with(&"x".repeat(1000)), "{capped}");
        assert!(
            capped.ends_with("[upgrade-check: log cut at 1000 bytes; 9000 more bytes not kept]\n"),
            "{capped}"
        );
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(
            visible("a\x1b]0;title\x07b\u{9b}31m\r\tc\n"),
            "a\\x1b]0;title\\x07b\\u{9b}31m\\r\tc\n"
        );
        assert!(matches!(visible("plain\ttext\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_control_sequences_are_removed() {
        let hostile = "a\x1b]52;c;ZXZpbA==\x07b\x1b]0;title\x1b\\c\x1b[31mred\x1b[0m\x1b]8;;http://x\x07link\x1b]8;;\x07\u{9b}\r\x08d\te\n";
        assert_eq!(terminal_safe(hostile), "abcredlinkd\te\n");
    }
}
