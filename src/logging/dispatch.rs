//! Where one log line goes: uWSGI's `uwsgi_master_log` / `uwsgi_master_req_log` decisions, pure.
//!
//! General stream: drains drop, filters keep, routes send to named loggers (every matching route, then
//! nowhere else), otherwise every unnamed logger, otherwise the raw original output. The request stream
//! (with a `req-logger`) has routes and loggers but no drains or filters, as in uWSGI.
//!
//! Patterns see the line without its final newline: PCRE's `$` (which uWSGI uses) matches before a final
//! newline, `fancy-regex`'s only at the very end, so stripping it gives the same answers.

use fancy_regex::Regex;
use liege_config::logs::{LogRoute, LogRouting, LoggerSpec};

/// A line's destination: a logger by index (into the stream's loggers) or the original output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Logger(usize),
    Raw,
}

/// The compiled rules of one stream.
#[derive(Debug)]
pub struct Rules {
    drains: Vec<Regex>,
    filters: Vec<Regex>,
    routes: Vec<(Regex, usize)>,
    unnamed: Vec<usize>,
}

impl Rules {
    /// The general stream's rules (patterns were checked by the config crate; an error here is a bug).
    pub fn general(routing: &LogRouting) -> Result<Self, Box<fancy_regex::Error>> {
        Ok(Self {
            drains: compile_all(&routing.drains)?,
            filters: compile_all(&routing.filters)?,
            routes: routes(&routing.routes, &routing.loggers)?,
            unnamed: unnamed(&routing.loggers),
        })
    }

    /// The request stream's rules (used only when there is a `req-logger`).
    pub fn requests(routing: &LogRouting) -> Result<Self, Box<fancy_regex::Error>> {
        Ok(Self {
            drains: Vec::new(),
            filters: Vec::new(),
            routes: routes(&routing.req_routes, &routing.req_loggers)?,
            unnamed: unnamed(&routing.req_loggers),
        })
    }

    /// Appends where `line` goes to `out` (nothing: dropped).
    pub fn destinations(&self, line: &[u8], out: &mut Vec<Destination>) {
        out.clear();
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
        let matches = |regex: &Regex| regex.is_match(&text).unwrap_or(false);
        if self.drains.iter().any(matches) {
            return;
        }
        if !self.filters.is_empty() && !self.filters.iter().any(matches) {
            return;
        }
        for (regex, logger) in &self.routes {
            if matches(regex) {
                out.push(Destination::Logger(*logger));
            }
        }
        if !out.is_empty() {
            return;
        }
        if self.unnamed.is_empty() {
            out.push(Destination::Raw);
        } else {
            out.extend(self.unnamed.iter().map(|&index| Destination::Logger(index)));
        }
    }
}

fn compile_all(patterns: &[String]) -> Result<Vec<Regex>, Box<fancy_regex::Error>> {
    patterns.iter().map(|pattern| Regex::new(pattern).map_err(Box::new)).collect()
}

/// Each route with the index of the logger it names (the config crate checked that it exists; uWSGI's
/// `uwsgi_get_logger_from_id` takes the first logger with that id).
fn routes(routes: &[LogRoute], loggers: &[LoggerSpec]) -> Result<Vec<(Regex, usize)>, Box<fancy_regex::Error>> {
    let mut compiled = Vec::new();
    for route in routes {
        if let Some(index) = loggers.iter().position(|logger| logger.id.as_deref() == Some(route.logger.as_str())) {
            compiled.push((Regex::new(&route.pattern).map_err(Box::new)?, index));
        }
    }
    Ok(compiled)
}

fn unnamed(loggers: &[LoggerSpec]) -> Vec<usize> {
    loggers.iter().enumerate().filter(|(_, logger)| logger.id.is_none()).map(|(index, _)| index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_config::logs::LoggerTarget;

    fn logger(id: Option<&str>) -> LoggerSpec {
        LoggerSpec { id: id.map(str::to_owned), target: LoggerTarget::Stdio }
    }

    fn route(logger: &str, pattern: &str) -> LogRoute {
        LogRoute { logger: logger.to_owned(), pattern: pattern.to_owned() }
    }

    fn where_to(rules: &Rules, line: &str) -> Vec<Destination> {
        let mut out = Vec::new();
        rules.destinations(line.as_bytes(), &mut out);
        out
    }

    #[test]
    fn mailman_routes_named_and_unnamed() {
        // docker-mailman's uwsgi.ini: cron and qcluster lines to their files, the rest to the error log.
        let routing = LogRouting {
            loggers: vec![logger(None), logger(Some("cron")), logger(Some("qcluster"))],
            routes: vec![route("cron", "uwsgi-cron"), route("qcluster", "uwsgi-daemons")],
            ..LogRouting::default()
        };
        let rules = Rules::general(&routing).unwrap();
        assert_eq!(where_to(&rules, "[uwsgi-cron] running job\n"), vec![Destination::Logger(1)]);
        assert_eq!(where_to(&rules, "uwsgi-daemons started\n"), vec![Destination::Logger(2)]);
        assert_eq!(where_to(&rules, "Traceback (most recent call last):\n"), vec![Destination::Logger(0)]);
        assert_eq!(
            where_to(&rules, "uwsgi-cron uwsgi-daemons\n"),
            vec![Destination::Logger(1), Destination::Logger(2)]
        );
    }

    #[test]
    fn lookahead_route_sends_non_json_lines_to_default() {
        // label-studio: JSON lines from the app go to applogger, everything else gets the default encoder.
        let routing = LogRouting {
            loggers: vec![logger(Some("default")), logger(Some("applogger"))],
            routes: vec![route("default", r"^((?!\{).)*$"), route("applogger", r"\{")],
            ..LogRouting::default()
        };
        let rules = Rules::general(&routing).unwrap();
        assert_eq!(where_to(&rules, "liege master[1] INFO: ready\n"), vec![Destination::Logger(0)]);
        assert_eq!(where_to(&rules, "{\"level\": \"info\"}\n"), vec![Destination::Logger(1)]);
        // Only named loggers and no route matched: uWSGI writes the line raw.
        let rules = Rules::general(&LogRouting { loggers: vec![logger(Some("x"))], ..LogRouting::default() }).unwrap();
        assert_eq!(where_to(&rules, "plain\n"), vec![Destination::Raw]);
    }

    #[test]
    fn drains_then_filters() {
        let routing = LogRouting {
            drains: vec!["generated 0 bytes".to_owned()],
            filters: vec!["GET".to_owned(), "POST".to_owned()],
            ..LogRouting::default()
        };
        let rules = Rules::general(&routing).unwrap();
        assert!(where_to(&rules, "GET / => generated 0 bytes in 1 msecs\n").is_empty());
        assert!(where_to(&rules, "DELETE /x => generated 5 bytes\n").is_empty());
        assert_eq!(where_to(&rules, "POST /x => generated 5 bytes\n"), vec![Destination::Raw]);
    }

    #[test]
    fn request_stream_has_no_drains() {
        let routing =
            LogRouting { drains: vec!["GET".to_owned()], req_loggers: vec![logger(None)], ..LogRouting::default() };
        let rules = Rules::requests(&routing).unwrap();
        assert_eq!(where_to(&rules, "GET /\n"), vec![Destination::Logger(0)]);
    }
}
