//! `log-encoder` / `log-req-encoder`: each log line is rewritten by the encoder chain before a logger writes
//! it, as uWSGI's `uwsgi_log_func_do` does. Pure: the time comes through [`EncoderClock`].
//!
//! A line reaches the chain with its newline. `format`/`json` templates decide themselves whether the
//! output keeps one (`${msg}` is the line without it, `${msgnl}` with it), which is why uWSGI configs follow
//! them with the `nl` encoder. An encoder with `:ID` applies only to the logger named ID (never to unnamed
//! loggers or the raw output), as `use_for` in uWSGI.

use std::io::Write;

use liege_config::logs::{EncoderKind, EncoderSpec, TemplatePiece};

/// The clock the templates read (`${unix}`, `${micros}`, `${millis}`, `${strftime:...}`).
pub trait EncoderClock {
    fn micros(&self) -> u64;
    /// The local time now in a strftime format.
    fn strftime(&self, format: &str) -> Vec<u8>;
}

/// The real clock.
pub struct LocalClock;

impl EncoderClock for LocalClock {
    fn micros(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
    }

    fn strftime(&self, format: &str) -> Vec<u8> {
        super::strftime_now(format)
    }
}

/// Runs `line` through the encoders that apply to the logger named `logger_id` (`None`: an unnamed logger or
/// the raw output). Returns the line unchanged (borrowed) when no encoder applies.
pub fn encode<'l>(
    encoders: &[EncoderSpec],
    logger_id: Option<&str>,
    line: &'l [u8],
    clock: &dyn EncoderClock,
) -> std::borrow::Cow<'l, [u8]> {
    let mut current = std::borrow::Cow::Borrowed(line);
    for encoder in encoders {
        if let Some(use_for) = &encoder.use_for {
            if logger_id != Some(use_for.as_str()) {
                continue;
            }
        }
        current = std::borrow::Cow::Owned(apply(&encoder.kind, &current, clock));
    }
    current
}

fn apply(kind: &EncoderKind, message: &[u8], clock: &dyn EncoderClock) -> Vec<u8> {
    match kind {
        EncoderKind::Prefix(prefix) => [prefix.as_bytes(), message].concat(),
        EncoderKind::Suffix(suffix) => [message, suffix.as_bytes()].concat(),
        EncoderKind::Nl => [message, b"\n"].concat(),
        EncoderKind::Format(pieces) => render(pieces, message, clock, false),
        EncoderKind::Json(pieces) => render(pieces, message, clock, true),
        EncoderKind::Gzip => {
            compress(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()), message)
        }
        EncoderKind::Compress => {
            compress(flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default()), message)
        }
    }
}

/// Compresses into memory; writing to a `Vec` cannot fail, so the fallback (the line as it was) is only
/// there to avoid an `unwrap`.
fn compress<E: Write + Finish>(mut encoder: E, message: &[u8]) -> Vec<u8> {
    if encoder.write_all(message).is_err() {
        return message.to_vec();
    }
    encoder.finish_vec().unwrap_or_else(|| message.to_vec())
}

trait Finish {
    fn finish_vec(self) -> Option<Vec<u8>>;
}

impl Finish for flate2::write::GzEncoder<Vec<u8>> {
    fn finish_vec(self) -> Option<Vec<u8>> {
        self.finish().ok()
    }
}

impl Finish for flate2::write::ZlibEncoder<Vec<u8>> {
    fn finish_vec(self) -> Option<Vec<u8>> {
        self.finish().ok()
    }
}

fn render(pieces: &[TemplatePiece], message: &[u8], clock: &dyn EncoderClock, json: bool) -> Vec<u8> {
    let without_newline = message.strip_suffix(b"\n").unwrap_or(message);
    let mut out = Vec::with_capacity(message.len() + 64);
    let value = |out: &mut Vec<u8>, bytes: &[u8]| {
        if json {
            json_escape(bytes, out)
        } else {
            out.extend_from_slice(bytes)
        }
    };
    for piece in pieces {
        match piece {
            TemplatePiece::Text(text) => out.extend_from_slice(text.as_bytes()),
            TemplatePiece::Msg => value(&mut out, without_newline),
            TemplatePiece::MsgNl => value(&mut out, message),
            TemplatePiece::Unix => {
                out.extend_from_slice(itoa::Buffer::new().format(clock.micros() / 1_000_000).as_bytes())
            }
            TemplatePiece::Micros => out.extend_from_slice(itoa::Buffer::new().format(clock.micros()).as_bytes()),
            TemplatePiece::Millis => {
                out.extend_from_slice(itoa::Buffer::new().format(clock.micros() / 1000).as_bytes())
            }
            TemplatePiece::Strftime(format) => value(&mut out, &clock.strftime(format)),
        }
    }
    out
}

/// The inside of a JSON string: quotes, backslashes and control bytes escaped; invalid UTF-8 replaced, so the
/// output is always valid JSON whatever the app printed.
fn json_escape(bytes: &[u8], out: &mut Vec<u8>) {
    for ch in String::from_utf8_lossy(bytes).chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            ch if (ch as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            ch => {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_config::logs::{EncoderKind as K, TemplatePiece as P};

    struct Fixed;
    impl EncoderClock for Fixed {
        fn micros(&self) -> u64 {
            1_700_000_000_123_456
        }
        fn strftime(&self, format: &str) -> Vec<u8> {
            format!("<{format}>").into_bytes()
        }
    }

    fn spec(use_for: Option<&str>, kind: K) -> EncoderSpec {
        EncoderSpec { use_for: use_for.map(str::to_owned), kind }
    }

    #[test]
    fn chain_applies_in_order_and_respects_use_for() {
        let encoders = vec![
            spec(None, K::Prefix("[a] ".into())),
            spec(Some("net"), K::Suffix(" (net)".into())),
            spec(None, K::Format(vec![P::Text("<".into()), P::Msg, P::Text(">".into())])),
            spec(None, K::Nl),
        ];
        assert_eq!(&*encode(&encoders, None, b"hello\n", &Fixed), b"<[a] hello>\n");
        // `[a] hello\n (net)`: the suffix comes after the newline, as in uWSGI; ${msg} strips only a final one.
        assert_eq!(&*encode(&encoders, Some("net"), b"hello\n", &Fixed), b"<[a] hello\n (net)>\n");
        assert!(matches!(encode(&[], None, b"x\n", &Fixed), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn json_escapes_values_not_the_template() {
        let template = vec![
            P::Text(r#"{"time": ""#.into()),
            P::Strftime("%d".into()),
            P::Text(r#"", "message": ""#.into()),
            P::Msg,
            P::Text(r#"", "unix": "#.into()),
            P::Unix,
            P::Text(r#", "ms": "#.into()),
            P::Millis,
            P::Text("}".into()),
        ];
        let out = encode(&[spec(None, K::Json(template))], None, b"say \"hi\"\\\t\x01\xff\n", &Fixed);
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert_eq!(
            text,
            r#"{"time": "<%d>", "message": "say \"hi\"\\\t\u0001�", "unix": 1700000000, "ms": 1700000000123}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["message"], "say \"hi\"\\\t\u{1}\u{fffd}");
    }

    #[test]
    fn msgnl_and_micros() {
        let out = encode(&[spec(None, K::Format(vec![P::MsgNl, P::Micros]))], None, b"x\n", &Fixed);
        assert_eq!(&*out, b"x\n1700000000123456");
    }

    #[test]
    fn gzip_and_compress_round_trip() {
        use std::io::Read;
        let gz = encode(&[spec(None, K::Gzip)], None, b"line\n", &Fixed).into_owned();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text, "line\n");
        let z = encode(&[spec(None, K::Compress)], None, b"line\n", &Fixed).into_owned();
        let mut text = String::new();
        flate2::read::ZlibDecoder::new(&z[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text, "line\n");
    }
}
