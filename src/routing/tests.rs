use super::*;
use std::path::PathBuf;

fn line(table: RouteTable, kind: RouteKind, text: &str, number: usize) -> RouteLine {
    RouteLine {
        table,
        kind,
        text: text.to_owned(),
        origin: Origin::File { path: PathBuf::from("app.ini"), line: number },
    }
}

fn program(lines: &[(RouteKind, &str)]) -> Program {
    let lines: Vec<_> =
        lines.iter().enumerate().map(|(i, (kind, text))| line(RouteTable::Request, *kind, text, i + 1)).collect();
    Program::compile(&lines).unwrap()
}

fn compile_error(kind: RouteKind, text: &str) -> String {
    Program::compile(&[line(RouteTable::Request, kind, text, 7)]).unwrap_err().to_string()
}

struct NoFs;
impl Probe for NoFs {
    fn facts(&self, path: &str) -> Option<FileFacts> {
        match path {
            "/etc/file" => Some(FileFacts { is_file: true, ..Default::default() }),
            "/etc" => Some(FileFacts { is_dir: true, ..Default::default() }),
            _ => None,
        }
    }
}

fn request(path: &str, query: &str) -> RouteRequest {
    RouteRequest::new(vec![
        ("REQUEST_METHOD".into(), "GET".into()),
        ("PATH_INFO".into(), path.into()),
        ("QUERY_STRING".into(), query.into()),
        ("REQUEST_URI".into(), if query.is_empty() { path.into() } else { format!("{path}?{query}") }),
        ("HTTP_HOST".into(), "example.com".into()),
        ("REMOTE_ADDR".into(), "192.168.1.20".into()),
        ("HTTP_USER_AGENT".into(), "kube-probe/1.27".into()),
    ])
}

fn run(program: &Program, request: &mut RouteRequest) -> (Verdict, Effects) {
    let mut effects = Effects::default();
    let verdict = program.run(RouteTable::Request, request, &NoFs, &mut effects);
    (verdict, effects)
}

#[test]
fn donotlog_health_checks_only() {
    let program = program(&[(RouteKind::PathInfo, "^/healthz$ donotlog:")]);
    let (verdict, effects) = run(&program, &mut request("/healthz", ""));
    assert_eq!(verdict, Verdict::Proceed);
    assert!(effects.donotlog);
    assert!(!run(&program, &mut request("/healthz/x", "")).1.donotlog);
    let by_agent = self::program(&[(RouteKind::UserAgent, "^kube-probe donotlog:")]);
    assert!(run(&by_agent, &mut request("/", "")).1.donotlog);
}

#[test]
fn redirect_with_captures_and_vars() {
    let program = program(&[(RouteKind::PathInfo, "^/old/(.*)$ redirect-301:https://${HTTP_HOST}/new/$1")]);
    let (verdict, _) = run(&program, &mut request("/old/a/b", ""));
    let Verdict::Reply(reply) = verdict else { panic!("{verdict:?}") };
    assert_eq!(reply.status, 301);
    assert!(reply.headers.contains(&("Location".into(), "https://example.com/new/a/b".into())));
}

#[test]
fn rewrite_changes_path_info_and_merges_the_query() {
    let program = program(&[
        (RouteKind::PathInfo, "^/p/(\\d+)$ rewrite:/post?id=$1"),
        (RouteKind::PathInfo, "^/post$ addheader:X-Rewritten: yes"),
    ]);
    let mut request = request("/p/42", "lang=en");
    let (verdict, effects) = run(&program, &mut request);
    assert_eq!(verdict, Verdict::Proceed);
    assert_eq!(request.get("PATH_INFO"), Some("/post"));
    assert_eq!(request.get("QUERY_STRING"), Some("id=42&lang=en"));
    assert_eq!(effects.add_headers, vec![("X-Rewritten".into(), "yes".into())]);
    let overrides = request.overrides();
    assert!(overrides.contains(&("PATH_INFO".into(), "/post".into())));
}

#[test]
fn rewrite_last_stops_routing() {
    let program = program(&[(RouteKind::Run, "rewrite-last:/x"), (RouteKind::Run, "return:404")]);
    assert_eq!(run(&program, &mut request("/", "")).0, Verdict::Proceed);
}

#[test]
fn return_break_and_continue() {
    let program = program(&[
        (RouteKind::PathInfo, "^/ok continue:"),
        (RouteKind::PathInfo, "^/gone return:410"),
        (RouteKind::PathInfo, "^/deny break:403 Go away"),
        (RouteKind::PathInfo, "^/drop break:"),
        (RouteKind::Run, "return:404"),
    ]);
    assert_eq!(run(&program, &mut request("/ok", "")).0, Verdict::Proceed);
    let Verdict::Reply(gone) = run(&program, &mut request("/gone", "")).0 else { panic!() };
    assert_eq!((gone.status, gone.body.as_str()), (410, "Gone"));
    let Verdict::Reply(deny) = run(&program, &mut request("/deny", "")).0 else { panic!() };
    assert_eq!((deny.status, deny.reason.as_deref(), deny.close), (403, Some("Go away"), true));
    assert_eq!(run(&program, &mut request("/drop", "")).0, Verdict::Close);
    let Verdict::Reply(other) = run(&program, &mut request("/else", "")).0 else { panic!() };
    assert_eq!(other.status, 404);
}

#[test]
fn goto_skips_to_the_label() {
    let program = program(&[
        (RouteKind::Host, "^example\\.com$ goto:known"),
        (RouteKind::Run, "return:403"),
        (RouteKind::Label, "known"),
        (RouteKind::Run, "addheader:X-Known: 1"),
    ]);
    let (verdict, effects) = run(&program, &mut request("/", ""));
    assert_eq!(verdict, Verdict::Proceed);
    assert_eq!(effects.add_headers.len(), 1);
}

#[test]
fn conditions() {
    let program = program(&[
        (RouteKind::If, "equal:${QUERY_STRING};x=1 addheader:X-Eq: 1"),
        (RouteKind::If, "startswith:${PATH_INFO};/api addheader:X-Api: 1"),
        (RouteKind::IfNot, "contains:${HTTP_USER_AGENT};curl addheader:X-Not-Curl: 1"),
        (RouteKind::If, "regexp:${PATH_INFO};^/api/v(\\d+) addheader:X-Version: $1"),
        (RouteKind::If, "ipv4in:${REMOTE_ADDR};192.168.0.0/16 addheader:X-Lan: 1"),
        (RouteKind::If, "ishigher:${HTTP_CONTENT_LENGTH};100 addheader:X-Big: 1"),
        (RouteKind::If, "isfile:/etc/file addheader:X-File: 1"),
        (RouteKind::If, "isdir:/etc/file addheader:X-Dir: 1"),
        (RouteKind::If, "empty:${HTTP_COOKIE} addheader:X-No-Cookie: 1"),
    ]);
    let (_, effects) = run(&program, &mut request("/api/v2/x", "x=1"));
    let names: Vec<_> = effects.add_headers.iter().map(|(n, v)| format!("{n}={v}")).collect();
    assert_eq!(names, ["X-Eq=1", "X-Api=1", "X-Not-Curl=1", "X-Version=2", "X-Lan=1", "X-File=1", "X-No-Cookie=1"]);
}

#[test]
fn basicauth() {
    let program = program(&[(RouteKind::PathInfo, "^/admin basicauth:Staff,alice:s3cret")]);
    let Verdict::Reply(reply) = run(&program, &mut request("/admin", "")).0 else { panic!() };
    assert_eq!(reply.status, 401);
    assert!(reply.headers.contains(&("WWW-Authenticate".into(), "Basic realm=\"Staff\"".into())));
    let mut authorized = request("/admin", "");
    authorized.set("HTTP_AUTHORIZATION", "Basic YWxpY2U6czNjcmV0".into());
    assert_eq!(run(&program, &mut authorized).0, Verdict::Proceed);
    assert_eq!(authorized.get("REMOTE_USER"), Some("alice"));
}

#[test]
fn set_actions_and_static() {
    let program = program(&[
        (RouteKind::Run, "setscriptname:/app"),
        (RouteKind::Run, "setpathinfo:/app/x"),
        (RouteKind::Run, "fixpathinfo:"),
        (RouteKind::Run, "addvar:FOO=bar"),
        (RouteKind::PathInfo, "^/x$ static:/srv/$0.txt"),
    ]);
    let mut request = request("/", "");
    assert_eq!(run(&program, &mut request).0, Verdict::File("/srv//x.txt".into()));
    assert_eq!(request.get("SCRIPT_NAME"), Some("/app"));
    assert_eq!(request.get("FOO"), Some("bar"));
}

#[test]
fn status_tables() {
    let lines = [
        line(RouteTable::Error, RouteKind::Status, "404 redirect:/missing", 1),
        line(RouteTable::Final, RouteKind::Status, "200 donotlog:", 2),
    ];
    let program = Program::compile(&lines).unwrap();
    let mut request = request("/x", "");
    request.status = Some(404);
    let mut effects = Effects::default();
    assert!(
        matches!(program.run(RouteTable::Error, &mut request, &NoFs, &mut effects), Verdict::Reply(r) if r.status == 302)
    );
    request.status = Some(200);
    program.run(RouteTable::Final, &mut request, &NoFs, &mut effects);
    assert!(effects.donotlog);
}

#[test]
fn compile_errors_name_the_line() {
    let error = compile_error(RouteKind::PathInfo, "^/x cache:key=x");
    assert!(error.starts_with("app.ini:7: route = ^/x cache:key=x: the 'cache' action is not supported"), "{error}");
    assert!(compile_error(RouteKind::PathInfo, "(?<=a)b donotlog:").contains("look-around"));
    assert!(compile_error(RouteKind::PathInfo, "^/x frobnicate:").contains("unknown route action 'frobnicate'"));
    assert!(compile_error(RouteKind::PathInfo, "nospace").contains("SUBJECT ACTION"));
    assert!(compile_error(RouteKind::If, "nosuch:x donotlog:").contains("unknown route condition"));
    assert!(compile_error(RouteKind::Run, "goto:nowhere").contains("no route-label"));
    assert!(compile_error(RouteKind::Run, "basicauth:realm,/etc/htpasswd").contains("htpasswd"));
    let final_reply = Program::compile(&[line(RouteTable::Final, RouteKind::Run, "return:500", 3)]).unwrap_err();
    assert!(final_reply.to_string().contains("final routes run after"), "{final_reply}");
}
