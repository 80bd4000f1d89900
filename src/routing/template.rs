//! Route arguments with uWSGI's substitutions: `$1`..`$9` (captures of the route's regex, `$0` the whole
//! match) and `${VAR}` (a request var: `${PATH_INFO}`, `${HTTP_HOST}`...), plus the route-var functions
//! `${qs[key]}`, `${cookie[name]}`, `${upper[VAR]}`, `${lower[VAR]}`, `${hex[VAR]}`, `${base64[VAR]}` and
//! `${time[unix]}`.
//!
//! Parsed once at startup into pieces, so a request only concatenates. uWSGI substitutes the captures first
//! and then the vars on the result; here both happen in one pass, which differs only when a captured text
//! itself contains `${...}` (uWSGI would expand it: an injection hazard, not a feature).

use std::borrow::Cow;

/// Where a template's values come from while a request is routed.
pub trait Vars {
    fn var(&self, name: &str) -> Option<Cow<'_, str>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Capture(usize),
    Var(String),
    Func(Func, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Qs,
    Cookie,
    Upper,
    Lower,
    Hex,
    Base64,
    Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(digit) = after.chars().next().and_then(|c| c.to_digit(10)) {
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Capture(digit as usize));
                rest = &after[1..];
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    // uWSGI keeps an unterminated `${` as text.
                    literal.push_str(&rest[dollar..]);
                    rest = "";
                    break;
                };
                let key = &body[..end];
                flush(&mut literal, &mut pieces);
                pieces.push(parse_key(key)?);
                rest = &body[end + 1..];
            } else {
                literal.push('$');
                rest = after;
            }
        }
        literal.push_str(rest);
        flush(&mut literal, &mut pieces);
        Ok(Self { pieces })
    }

    /// The text as written when it has no substitution (labels, status codes checked at startup).
    #[cfg(test)]
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(text)] => Some(text),
            _ => None,
        }
    }

    pub fn render(&self, captures: &[Option<String>], vars: &dyn Vars) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Capture(n) => {
                    if let Some(Some(text)) = captures.get(*n) {
                        out.push_str(text)
                    }
                }
                Piece::Var(name) => {
                    if let Some(value) = vars.var(name) {
                        out.push_str(&value)
                    }
                }
                Piece::Func(func, arg) => out.push_str(&apply(*func, arg, vars)),
            }
        }
        out
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal)));
    }
}

fn parse_key(key: &str) -> Result<Piece, String> {
    if let (Some(open), true) = (key.find('['), key.ends_with(']')) {
        let name = &key[..open];
        let arg = key[open + 1..key.len() - 1].to_owned();
        let func = match name {
            "qs" => Func::Qs,
            "cookie" => Func::Cookie,
            "upper" => Func::Upper,
            "lower" => Func::Lower,
            "hex" => Func::Hex,
            "base64" => Func::Base64,
            "time" => Func::Time,
            "mime" | "uwsgi" | "httptime" | "geoip" => {
                return Err(format!("the route variable ${{{name}[...]}} is not supported by liege"))
            }
            // uWSGI falls back to a plain var named `name[arg]`.
            _ => return Ok(Piece::Var(key.to_owned())),
        };
        if func == Func::Time && arg != "unix" {
            return Err(format!("${{time[{arg}]}}: only ${{time[unix]}} exists"));
        }
        return Ok(Piece::Func(func, arg));
    }
    Ok(Piece::Var(key.to_owned()))
}

fn apply(func: Func, arg: &str, vars: &dyn Vars) -> String {
    let var = || vars.var(arg).map(Cow::into_owned).unwrap_or_default();
    match func {
        Func::Qs => {
            let query = vars.var("QUERY_STRING").unwrap_or_default();
            lookup_pair(&query, '&', arg).unwrap_or_default()
        }
        Func::Cookie => {
            let cookies = vars.var("HTTP_COOKIE").unwrap_or_default();
            lookup_pair(&cookies, ';', arg).unwrap_or_default()
        }
        Func::Upper => var().to_ascii_uppercase(),
        Func::Lower => var().to_ascii_lowercase(),
        Func::Hex => var().bytes().map(|b| format!("{b:02x}")).collect(),
        Func::Base64 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(var())
        }
        Func::Time => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string()
        }
    }
}

/// `key=value` in a `sep`-separated list (query strings, cookies), values as written (not decoded, as uWSGI).
fn lookup_pair(list: &str, sep: char, key: &str) -> Option<String> {
    list.split(sep).map(str::trim).find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Vars for Map {
        fn var(&self, name: &str) -> Option<Cow<'_, str>> {
            self.0.get(name).map(|v| Cow::Borrowed(*v))
        }
    }

    fn vars() -> Map {
        Map(HashMap::from([
            ("HTTP_HOST", "example.com"),
            ("QUERY_STRING", "a=1&b=two"),
            ("HTTP_COOKIE", "sid=abc; theme=dark"),
            ("PATH_INFO", "/Foo"),
        ]))
    }

    #[test]
    fn substitutes_captures_vars_and_functions() {
        let template =
            Template::parse("https://${HTTP_HOST}/$1?b=${qs[b]}&t=${cookie[theme]}&p=${lower[PATH_INFO]}$").unwrap();
        let captures = vec![Some("/x/y".to_owned()), Some("y".to_owned())];
        assert_eq!(template.render(&captures, &vars()), "https://example.com/y?b=two&t=dark&p=/foo$");
    }

    #[test]
    fn missing_values_are_empty_and_unterminated_braces_are_text() {
        let template = Template::parse("[$3][${NOPE}][${open").unwrap();
        assert_eq!(template.render(&[], &vars()), "[][][${open");
    }

    #[test]
    fn unsupported_functions_are_errors() {
        assert!(Template::parse("${mime[x]}").is_err());
        assert!(Template::parse("${time[iso]}").is_err());
        assert_eq!(Template::parse("plain").unwrap().as_literal(), Some("plain"));
    }
}
