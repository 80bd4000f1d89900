//! uWSGI's internal routing (`route`, `route-if`, `route-label`... and the `final-`, `error-` and
//! `response-` tables), compiled at startup into a typed program and evaluated against a request view.
//!
//! Pure: [`Program::compile`] checks every line (regex, action, label, argument) and names its file and
//! line on error; [`Program::run`] decides what a request gets (go on to the app with changed vars, a
//! reply, a file, a closed connection) and which side effects to apply (log lines, headers, `donotlog`).
//! The only outside facts it needs, for `exists`/`isfile`/`isdir`/`islink`/`isexec`, come through
//! [`Probe`], so tests use a fake file system. The worker applies the decision.
//!
//! Regexes are the `regex` crate's, not PCRE: the same syntax for everything real routes use (classes,
//! groups, anchors, `(?i)`...), but no look-around and no backreferences; a route using them is refused
//! at startup with the regex error.
//!
//! Flow as in uWSGI: rules run in order; a rule whose subject matches runs its action, which either goes
//! on to the next rule (`addheader`, `log`, `rewrite`, `setpathinfo`...), stops routing and lets the request
//! through (`continue`, `last`, `rewrite-last`), jumps forward to a label (`goto`), or ends the request
//! (`break`, `return`, `redirect`, `static`, `basicauth` refusing...). Falling off the end lets it through.

mod template;

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use liege_config::{Origin, RouteKind, RouteLine, RouteTable};
use regex::Regex;
pub use template::{Template, Vars};

/// A routing error, naming the line it comes from.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {option} = {text}: {reason}")]
pub struct RouteError {
    pub origin: Origin,
    pub option: String,
    pub text: String,
    pub reason: String,
}

/// The compiled routes, one list per table.
#[derive(Debug, Default)]
pub struct Program {
    tables: [Vec<Rule>; 4],
}

fn table_index(table: RouteTable) -> usize {
    match table {
        RouteTable::Request => 0,
        RouteTable::Final => 1,
        RouteTable::Error => 2,
        RouteTable::Response => 3,
    }
}

#[derive(Debug)]
struct Rule {
    matcher: Matcher,
    action: Action,
}

#[derive(Debug)]
enum Matcher {
    Label,
    Always,
    Subject(&'static str, Regex),
    Condition { condition: Condition, negate: bool },
    Status(u16),
}

#[derive(Debug)]
enum Condition {
    Exists(Template),
    IsFile(Template),
    IsDir(Template),
    IsLink(Template),
    IsExec(Template),
    Empty(Template),
    Equal(Template, Template),
    StartsWith(Template, Template),
    EndsWith(Template, Template),
    Contains(Template, Template),
    Regexp(Template, Regex),
    Compare(Template, Template, std::cmp::Ordering, bool),
    Ipv4In(Template, Ipv4Addr, u32),
    Ipv6In(Template, Ipv6Addr, u32),
}

#[derive(Debug)]
enum Action {
    Continue,
    /// `break` (close the connection) or `break:STATUS LINE`.
    Break(Option<Template>),
    /// `return:CODE` / `break-with-status:CODE`.
    Return(u16),
    Log(Template),
    DoNotLog,
    /// Index of the label's rule.
    Goto(usize),
    AddVar(String, Template),
    /// `setpathinfo`, `setscriptname`, `setmethod`, `seturi`, `setremoteaddr`, `setdocroot`, `setscheme`.
    SetVar(&'static str, Template),
    FixPathInfo,
    AddHeader(Template),
    DelHeader(Template),
    ClearHeaders,
    Rewrite {
        to: Template,
        last: bool,
    },
    Redirect {
        to: Template,
        permanent: bool,
    },
    /// `static:PATH` or `file:filename=PATH[,mime=1]`.
    ServeFile(Template),
    BasicAuth {
        realm: String,
        credentials: String,
        next: bool,
    },
    Chdir(Template),
    /// `donotoffload`: liege never offloads (files are sent by the event loop already).
    Nothing,
}

/// Facts about a path, for the file conditions.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileFacts {
    pub is_file: bool,
    pub is_dir: bool,
    pub is_link: bool,
    pub is_exec: bool,
}

/// The file system, as the file conditions see it.
pub trait Probe {
    fn facts(&self, path: &str) -> Option<FileFacts>;
}

/// The real file system (`stat`/`lstat`).
pub struct RealFs;

impl Probe for RealFs {
    fn facts(&self, path: &str) -> Option<FileFacts> {
        use std::os::unix::fs::PermissionsExt;
        let link = std::fs::symlink_metadata(path).ok()?;
        let meta = std::fs::metadata(path).ok();
        Some(FileFacts {
            is_file: meta.as_ref().is_some_and(|m| m.is_file()),
            is_dir: meta.as_ref().is_some_and(|m| m.is_dir()),
            is_link: link.file_type().is_symlink(),
            is_exec: meta.as_ref().is_some_and(|m| m.permissions().mode() & 0o111 != 0),
        })
    }
}

/// The request as routing sees it: its CGI vars (what the app's environ will hold), changed in place by
/// the actions. The last value of a name wins, as when uWSGI appends a var.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    vars: Vec<(String, String)>,
    /// Names the routes set or added, in order (these go into the environ over the originals).
    changed: Vec<String>,
    /// The response's status, for the `*-route-status` rules and `${...}` in response tables.
    pub status: Option<u16>,
}

impl RouteRequest {
    pub fn new(vars: Vec<(String, String)>) -> Self {
        Self { vars, changed: Vec::new(), status: None }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().rev().find(|(key, _)| key == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_owned(), value)),
        }
        if !self.changed.iter().any(|changed| changed == name) {
            self.changed.push(name.to_owned());
        }
    }

    /// The vars the routes changed, with their final values (to put into the environ).
    pub fn overrides(&self) -> Vec<(String, String)> {
        self.changed.iter().map(|name| (name.clone(), self.get(name).unwrap_or("").to_owned())).collect()
    }
}

impl Vars for RouteRequest {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// A response produced by a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The reason phrase when the route gave one (`break:403 Go away`).
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub close: bool,
}

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// On to the static file or the app (with [`RouteRequest::overrides`]).
    Proceed,
    Reply(Reply),
    /// Serve this file (through the static-file path: MIME type, Last-Modified, ranges).
    File(String),
    /// Close the connection without a response (`break` with no status).
    Close,
}

/// Side effects the routes asked for, applied by the worker whatever the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub donotlog: bool,
    /// `log:` lines, to write to the log now.
    pub log: Vec<String>,
    pub add_headers: Vec<(String, String)>,
    /// Lowercased names.
    pub del_headers: Vec<String>,
    pub clear_headers: bool,
    pub chdir: Option<String>,
}

/// Actions that make sense after the response was sent (final routes).
fn allowed_in_final(action: &Action) -> bool {
    matches!(
        action,
        Action::Continue | Action::Break(None) | Action::Log(_) | Action::DoNotLog | Action::Goto(_) | Action::Nothing
    )
}

impl Program {
    pub fn compile(lines: &[RouteLine]) -> Result<Self, RouteError> {
        let mut program = Program::default();
        // Labels first (goto may name a later one), per table.
        let mut labels: [Vec<(String, usize)>; 4] = Default::default();
        let mut counts = [0usize; 4];
        for line in lines {
            let index = table_index(line.table);
            if line.kind == RouteKind::Label {
                labels[index].push((line.text.trim().to_owned(), counts[index]));
            }
            counts[index] += 1;
        }
        for line in lines {
            let index = table_index(line.table);
            let position = program.tables[index].len();
            let error = |reason: String| RouteError {
                origin: line.origin.clone(),
                option: option_name(line.table, line.kind),
                text: line.text.clone(),
                reason,
            };
            let rule = compile_rule(line, position, &labels[index]).map_err(error)?;
            if line.table == RouteTable::Final && !allowed_in_final(&rule.action) {
                return Err(error(
                    "final routes run after the response was sent: only log, donotlog, goto, continue and break \
                     make sense there"
                        .into(),
                ));
            }
            program.tables[index].push(rule);
        }
        Ok(program)
    }

    pub fn is_empty(&self, table: RouteTable) -> bool {
        self.tables[table_index(table)].is_empty()
    }

    /// Runs one table against the request; effects accumulate into `effects`.
    pub fn run(
        &self,
        table: RouteTable,
        request: &mut RouteRequest,
        probe: &dyn Probe,
        effects: &mut Effects,
    ) -> Verdict {
        let rules = &self.tables[table_index(table)];
        let mut pc = 0;
        while let Some(rule) = rules.get(pc) {
            pc += 1;
            let Some(captures) = rule.matcher.matches(request, probe) else { continue };
            match rule.action.apply(&captures, request, effects) {
                Step::Next => {}
                Step::Jump(to) => pc = to,
                Step::Stop(verdict) => return verdict,
            }
        }
        Verdict::Proceed
    }
}

fn option_name(table: RouteTable, kind: RouteKind) -> String {
    let prefix = match table {
        RouteTable::Request => "route",
        RouteTable::Final => "final-route",
        RouteTable::Error => "error-route",
        RouteTable::Response => "response-route",
    };
    let suffix = match kind {
        RouteKind::PathInfo => "",
        RouteKind::Host => "-host",
        RouteKind::Uri => "-uri",
        RouteKind::QueryString => "-qs",
        RouteKind::RemoteAddr => "-remote-addr",
        RouteKind::UserAgent => "-user-agent",
        RouteKind::Referer => "-referer",
        RouteKind::RemoteUser => "-remote-user",
        RouteKind::If => "-if",
        RouteKind::IfNot => "-if-not",
        RouteKind::Run => "-run",
        RouteKind::Label => "-label",
        RouteKind::Status => "-status",
    };
    format!("{prefix}{suffix}")
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| {
        format!("invalid regex (liege uses Rust regex syntax: like PCRE without look-around or backreferences): {err}")
    })
}

fn compile_rule(line: &RouteLine, position: usize, labels: &[(String, usize)]) -> Result<Rule, String> {
    let text = line.text.trim();
    if line.kind == RouteKind::Label {
        if text.is_empty() {
            return Err("a label needs a name".into());
        }
        return Ok(Rule { matcher: Matcher::Label, action: Action::Nothing });
    }
    let (head, action) = if line.kind == RouteKind::Run {
        ("", text)
    } else {
        text.split_once(' ').ok_or("expected 'SUBJECT ACTION' (separated by a space)")?
    };
    let matcher = match line.kind {
        RouteKind::Run => Matcher::Always,
        RouteKind::If | RouteKind::IfNot => {
            Matcher::Condition { condition: compile_condition(head)?, negate: line.kind == RouteKind::IfNot }
        }
        RouteKind::Status => Matcher::Status(head.parse().map_err(|_| format!("'{head}' is not an HTTP status code"))?),
        kind => Matcher::Subject(subject_var(kind), regex(head)?),
    };
    let action = compile_action(action.trim_start(), position, labels)?;
    Ok(Rule { matcher, action })
}

fn subject_var(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Host => "HTTP_HOST",
        RouteKind::Uri => "REQUEST_URI",
        RouteKind::QueryString => "QUERY_STRING",
        RouteKind::RemoteAddr => "REMOTE_ADDR",
        RouteKind::UserAgent => "HTTP_USER_AGENT",
        RouteKind::Referer => "HTTP_REFERER",
        RouteKind::RemoteUser => "REMOTE_USER",
        _ => "PATH_INFO",
    }
}

fn compile_condition(head: &str) -> Result<Condition, String> {
    let (name, args) = head.split_once(':').ok_or("expected CONDITION:ARGS before the action")?;
    let one = || Template::parse(args);
    let two = || -> Result<(Template, Template), String> {
        let (a, b) = args.split_once(';').ok_or_else(|| format!("the '{name}' condition takes two values: A;B"))?;
        Ok((Template::parse(a)?, Template::parse(b)?))
    };
    use std::cmp::Ordering::{Greater, Less};
    Ok(match name {
        "exists" => Condition::Exists(one()?),
        "isfile" => Condition::IsFile(one()?),
        "isdir" => Condition::IsDir(one()?),
        "islink" => Condition::IsLink(one()?),
        "isexec" => Condition::IsExec(one()?),
        "empty" => Condition::Empty(one()?),
        "equal" | "isequal" | "eq" | "==" => two().map(|(a, b)| Condition::Equal(a, b))?,
        "startswith" => two().map(|(a, b)| Condition::StartsWith(a, b))?,
        "endswith" => two().map(|(a, b)| Condition::EndsWith(a, b))?,
        "contains" | "contain" => two().map(|(a, b)| Condition::Contains(a, b))?,
        "regexp" | "re" => {
            let (subject, pattern) = args.split_once(';').ok_or("the 'regexp' condition takes SUBJECT;REGEX")?;
            Condition::Regexp(Template::parse(subject)?, regex(pattern)?)
        }
        "ishigher" | ">" => two().map(|(a, b)| Condition::Compare(a, b, Greater, false))?,
        "islower" | "<" => two().map(|(a, b)| Condition::Compare(a, b, Less, false))?,
        "ishigherequal" | ">=" => two().map(|(a, b)| Condition::Compare(a, b, Greater, true))?,
        "islowerequal" | "<=" => two().map(|(a, b)| Condition::Compare(a, b, Less, true))?,
        "ipv4in" | "ipv6in" => {
            let (address, network) = args.split_once(';').ok_or("takes ADDRESS;NETWORK[/PREFIX]")?;
            let (net, prefix) = network.split_once('/').map_or((network, None), |(n, p)| (n, Some(p)));
            let bad = || format!("'{network}' is not a network for {name}");
            let prefix: Option<u32> = prefix.map(str::parse).transpose().map_err(|_| bad())?;
            if name == "ipv4in" {
                let prefix = prefix.unwrap_or(32);
                if prefix > 32 {
                    return Err(bad());
                }
                Condition::Ipv4In(Template::parse(address)?, net.parse().map_err(|_| bad())?, prefix)
            } else {
                let prefix = prefix.unwrap_or(128);
                if prefix > 128 {
                    return Err(bad());
                }
                Condition::Ipv6In(Template::parse(address)?, net.parse().map_err(|_| bad())?, prefix)
            }
        }
        "lord" => return Err("the 'lord' condition needs uWSGI's Legion subsystem, which liege does not have".into()),
        other => return Err(format!("unknown route condition '{other}'")),
    })
}

/// uWSGI actions liege knows but cannot perform, with why.
fn unsupported_action(name: &str) -> Option<&'static str> {
    Some(match name {
        n if n.starts_with("cache") => "liege has no uWSGI cache",
        n if n.starts_with("memcached") || n.starts_with("redis") => "liege does not talk to memcached or redis",
        n if n.starts_with("metric") => "liege has no uWSGI metrics subsystem",
        "uwsgi" | "proxyuwsgi" | "http" | "httpdumb" | "proxyhttp" | "httpconnect" | "proxyhttpconnect" | "fcgi"
        | "fcgiauth" => "liege does not proxy requests to other servers: let nginx do that",
        "rpc" | "rpcnext" | "rpcret" | "rpcvar" | "rpcblob" | "rpcraw" | "call" => "liege has no uWSGI RPC",
        "cgi" | "cgihelper" | "gridfs" | "xmldir" | "hash" | "access" | "expires" => {
            "this uWSGI plugin is not part of liege"
        }
        "ldapauth" | "ldapauth-next" | "radius" | "radius-next" | "spnego" | "spnego-next" => {
            "liege does not implement this authentication backend"
        }
        "send" | "send-crnl" | "sendfile" | "sendfile-next" | "fastfile" | "fastfile-next" | "flush" | "fixcl"
        | "forcecl" | "disableheaders" => "raw writes to the client socket would break liege's HTTP framing",
        "signal" | "alarm" => "liege has no uWSGI signal or alarm framework",
        "setapp" | "setuser" | "sethome" | "setfile" | "setprocname" | "setmodifier1" | "setmodifier2" => {
            "liege serves one WSGI app per vassal; this action has nothing to act on"
        }
        "logvar" => "liege's logformat has no route-set variables yet",
        "harakiri" => {
            "a per-request harakiri needs the master's cooperation, which liege lacks: use the harakiri option"
        }
        "+" | "-" | "*" | "/" => "liege does not implement routing arithmetic",
        "static-next" | "file-next" => "the -next variants are not implemented",
        _ => return None,
    })
}

fn compile_action(text: &str, position: usize, labels: &[(String, usize)]) -> Result<Action, String> {
    let (name, arg) = text.split_once(':').ok_or("expected ACTION:ARGS (a colon even without arguments)")?;
    let template = || Template::parse(arg);
    Ok(match name {
        "continue" | "last" => Action::Continue,
        "break" => Action::Break(if arg.trim().len() >= 3 { Some(template()?) } else { None }),
        "return" | "break-with-status" => {
            let code: u16 = arg.trim().parse().map_err(|_| format!("'{arg}' is not an HTTP status code"))?;
            if !(100..=999).contains(&code) {
                return Err(format!("'{arg}' is not an HTTP status code"));
            }
            Action::Return(code)
        }
        "log" => Action::Log(template()?),
        "donotlog" => Action::DoNotLog,
        "donotoffload" => Action::Nothing,
        "goto" => {
            let label = arg.trim();
            let target = labels
                .iter()
                .find(|(name, _)| name == label)
                .map(|(_, at)| *at)
                .or_else(|| label.parse().ok())
                .ok_or_else(|| format!("no route-label '{label}' in this table"))?;
            if target <= position {
                return Err(format!("goto can only jump forward, and '{label}' comes before this line"));
            }
            Action::Goto(target)
        }
        "addvar" => {
            let (key, value) = arg.split_once('=').ok_or("addvar takes KEY=VALUE")?;
            Action::AddVar(key.to_owned(), Template::parse(value)?)
        }
        "setpathinfo" => Action::SetVar("PATH_INFO", template()?),
        "setscriptname" => Action::SetVar("SCRIPT_NAME", template()?),
        "setmethod" => Action::SetVar("REQUEST_METHOD", template()?),
        "seturi" => Action::SetVar("REQUEST_URI", template()?),
        "setremoteaddr" => Action::SetVar("REMOTE_ADDR", template()?),
        "setdocroot" => Action::SetVar("DOCUMENT_ROOT", template()?),
        "setscheme" => Action::SetVar("UWSGI_SCHEME", template()?),
        "fixpathinfo" => Action::FixPathInfo,
        "addheader" => {
            if !arg.contains(':') {
                return Err("addheader takes 'Name: value'".into());
            }
            Action::AddHeader(template()?)
        }
        "delheader" | "remheader" => Action::DelHeader(template()?),
        "clearheaders" | "resetheaders" => Action::ClearHeaders,
        "rewrite" | "rewrite-last" => Action::Rewrite { to: template()?, last: name == "rewrite-last" },
        "redirect" | "redirect-302" => Action::Redirect { to: template()?, permanent: false },
        "redirect-permanent" | "redirect-301" => Action::Redirect { to: template()?, permanent: true },
        "static" => Action::ServeFile(template()?),
        "file" => {
            let mut filename = None;
            for pair in arg.split(',') {
                match pair.split_once('=') {
                    Some(("filename", value)) => filename = Some(Template::parse(value)?),
                    Some(("mime", _)) => {} // liege always sends the file's content type
                    _ => return Err(format!("file takes filename=PATH[,mime=1], not '{pair}'")),
                }
            }
            Action::ServeFile(filename.ok_or("file needs filename=PATH")?)
        }
        "basicauth" | "basicauth-next" => {
            let (realm, credentials) = arg.split_once(',').ok_or("basicauth takes REALM,USER:PASSWORD")?;
            if !credentials.contains(':') {
                return Err("htpasswd files are not supported by liege: give USER:PASSWORD".into());
            }
            Action::BasicAuth {
                realm: realm.to_owned(),
                credentials: credentials.to_owned(),
                next: name == "basicauth-next",
            }
        }
        "chdir" => Action::Chdir(template()?),
        other => {
            return Err(match unsupported_action(other) {
                Some(reason) => format!("the '{other}' action is not supported: {reason}"),
                None => format!("unknown route action '{other}'"),
            })
        }
    })
}

impl Matcher {
    /// The captures (`$0`..) when the rule applies.
    fn matches(&self, request: &RouteRequest, probe: &dyn Probe) -> Option<Vec<Option<String>>> {
        match self {
            Matcher::Label => None,
            Matcher::Always => Some(Vec::new()),
            Matcher::Status(code) => (request.status == Some(*code)).then(Vec::new),
            Matcher::Subject(var, regex) => captures(regex, request.get(var).unwrap_or("")),
            Matcher::Condition { condition, negate } => {
                let outcome = condition.holds(request, probe);
                match (outcome, negate) {
                    (Some(captures), false) => Some(captures),
                    (None, true) => Some(Vec::new()),
                    _ => None,
                }
            }
        }
    }
}

fn captures(regex: &Regex, subject: &str) -> Option<Vec<Option<String>>> {
    regex.captures(subject).map(|found| found.iter().map(|group| group.map(|m| m.as_str().to_owned())).collect())
}

fn number(text: &str) -> i64 {
    // uWSGI's uwsgi_str_num: the leading digits.
    let digits: String = text.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

impl Condition {
    fn holds(&self, request: &RouteRequest, probe: &dyn Probe) -> Option<Vec<Option<String>>> {
        let render = |template: &Template| template.render(&[], request);
        let truth = |value: bool| value.then(Vec::new);
        let facts = |template: &Template| probe.facts(&render(template));
        match self {
            Condition::Exists(path) => truth(facts(path).is_some()),
            Condition::IsFile(path) => truth(facts(path).is_some_and(|f| f.is_file)),
            Condition::IsDir(path) => truth(facts(path).is_some_and(|f| f.is_dir)),
            Condition::IsLink(path) => truth(facts(path).is_some_and(|f| f.is_link)),
            Condition::IsExec(path) => truth(facts(path).is_some_and(|f| f.is_exec)),
            Condition::Empty(value) => truth(render(value).is_empty()),
            Condition::Equal(a, b) => truth(render(a) == render(b)),
            Condition::StartsWith(a, b) => truth(render(a).starts_with(&render(b))),
            Condition::EndsWith(a, b) => truth(render(a).ends_with(&render(b))),
            Condition::Contains(a, b) => truth(render(a).contains(&render(b))),
            Condition::Regexp(subject, regex) => captures(regex, &render(subject)),
            Condition::Compare(a, b, ordering, or_equal) => {
                let found = number(&render(a)).cmp(&number(&render(b)));
                truth(found == *ordering || (*or_equal && found.is_eq()))
            }
            Condition::Ipv4In(address, net, prefix) => {
                let address: Ipv4Addr = render(address).parse().ok()?;
                let mask = if *prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
                truth(u32::from(address) & mask == u32::from(*net) & mask)
            }
            Condition::Ipv6In(address, net, prefix) => {
                let address: Ipv6Addr = render(address).parse().ok()?;
                let mask = if *prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
                truth(u128::from(address) & mask == u128::from(*net) & mask)
            }
        }
    }
}

enum Step {
    Next,
    Jump(usize),
    Stop(Verdict),
}

fn status_reply(status: u16, reason: Option<String>, body: String, close: bool) -> Reply {
    let mut headers = vec![("Content-Type".to_owned(), "text/plain".to_owned())];
    if !body.is_empty() || !close {
        headers.push(("Content-Length".to_owned(), body.len().to_string()));
    }
    Reply { status, reason, headers, body, close }
}

impl Action {
    fn apply(&self, captures: &[Option<String>], request: &mut RouteRequest, effects: &mut Effects) -> Step {
        let render = |template: &Template, request: &RouteRequest| template.render(captures, request);
        match self {
            Action::Continue => return Step::Stop(Verdict::Proceed),
            Action::Break(None) => return Step::Stop(Verdict::Close),
            Action::Break(Some(line)) => {
                let line = render(line, request);
                let (code, reason) = line.split_once(' ').map_or((line.as_str(), None), |(c, r)| (c, Some(r)));
                return Step::Stop(match code.parse::<u16>() {
                    Ok(status @ 100..=999) => {
                        Verdict::Reply(status_reply(status, reason.map(str::to_owned), String::new(), true))
                    }
                    _ => Verdict::Close,
                });
            }
            Action::Return(code) => {
                let reason = http::StatusCode::from_u16(*code).ok().and_then(|s| s.canonical_reason());
                let body = reason.unwrap_or("").to_owned();
                return Step::Stop(Verdict::Reply(status_reply(*code, None, body, false)));
            }
            Action::Log(message) => effects.log.push(render(message, request)),
            Action::DoNotLog => effects.donotlog = true,
            Action::Goto(target) => return Step::Jump(*target),
            Action::AddVar(key, value) => {
                let value = render(value, request);
                request.set(key, value)
            }
            Action::SetVar(key, value) => {
                let value = render(value, request);
                request.set(key, value)
            }
            Action::FixPathInfo => {
                let script_name = request.get("SCRIPT_NAME").unwrap_or("").to_owned();
                if !script_name.is_empty() {
                    if let Some(rest) = request.get("PATH_INFO").and_then(|p| p.strip_prefix(&script_name)) {
                        let rest = rest.to_owned();
                        request.set("PATH_INFO", rest);
                    }
                }
            }
            Action::AddHeader(line) => {
                let line = render(line, request);
                if let Some((name, value)) = line.split_once(':') {
                    effects.add_headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
            Action::DelHeader(name) => effects.del_headers.push(render(name, request).trim().to_ascii_lowercase()),
            Action::ClearHeaders => effects.clear_headers = true,
            Action::Rewrite { to, last } => {
                let target = render(to, request);
                let (path, query) = target.split_once('?').map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
                let old_query = request.get("QUERY_STRING").unwrap_or("").to_owned();
                let query = match query {
                    Some(query) if !old_query.is_empty() => format!("{query}&{old_query}"),
                    Some(query) => query.to_owned(),
                    None => old_query,
                };
                let mut decoded = Vec::new();
                liege_protocol::http_policy::percent_decode(path.as_bytes(), &mut decoded);
                request.set("PATH_INFO", String::from_utf8_lossy(&decoded).into_owned());
                request.set("QUERY_STRING", query);
                if *last {
                    return Step::Stop(Verdict::Proceed);
                }
            }
            Action::Redirect { to, permanent } => {
                let location = render(to, request);
                let (status, body) = if *permanent { (301, "Moved Permanently") } else { (302, "Moved") };
                let mut reply = status_reply(status, None, body.to_owned(), false);
                reply.headers.push(("Location".to_owned(), location));
                return Step::Stop(Verdict::Reply(reply));
            }
            Action::ServeFile(path) => return Step::Stop(Verdict::File(render(path, request))),
            Action::BasicAuth { realm, credentials, next } => {
                if request.get("REMOTE_USER").is_some_and(|user| !user.is_empty()) {
                    return Step::Next;
                }
                let given = request.get("HTTP_AUTHORIZATION").and_then(|h| h.strip_prefix("Basic ")).map(|b64| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default()
                });
                match given {
                    Some(given) if given == credentials.as_bytes() => {
                        let user = credentials.split(':').next().unwrap_or("").to_owned();
                        request.set("REMOTE_USER", user);
                        return Step::Next;
                    }
                    Some(_) if *next => return Step::Next,
                    _ => {
                        let mut reply =
                            status_reply(401, Some("Authorization Required".into()), "Unauthorized".into(), false);
                        reply.headers.push(("WWW-Authenticate".to_owned(), format!("Basic realm=\"{realm}\"")));
                        return Step::Stop(Verdict::Reply(reply));
                    }
                }
            }
            Action::Chdir(dir) => effects.chdir = Some(render(dir, request)),
            Action::Nothing => {}
        }
        Step::Next
    }
}

#[cfg(test)]
mod tests;
