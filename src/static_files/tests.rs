use super::*;
use liege_config::Origin;

fn files(lines: &[(OptionId, &str)], honour_range: bool) -> StaticFiles {
    let config = RequestPathConfig {
        static_files: lines
            .iter()
            .map(|(id, value)| StaticLine {
                id: *id,
                value: (*value).to_owned(),
                origin: Origin::CommandLine { index: 0 },
            })
            .collect(),
        honour_range,
        // Something must be configured for compile to return Some.
        check_static_docroot: true,
        ..Default::default()
    };
    StaticFiles::compile(&config).unwrap().unwrap()
}

fn facts(size: u64) -> FileFacts {
    FileFacts {
        path: "/srv/static/app.css".into(),
        name: "/srv/static/app.css".into(),
        size,
        mtime: 1_000_000,
        mime: Some("text/css".into()),
        encoding: None,
    }
}

fn header<'p>(plan: &'p Plan, name: &str) -> Option<&'p str> {
    plan.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

#[test]
fn full_response_headers() {
    let plan = files(&[], false).plan(&facts(10), &Conditions::default(), 2_000_000);
    assert_eq!(plan.status, 200);
    assert_eq!(plan.body, Some((0, 10)));
    assert_eq!(header(&plan, "Content-Type"), Some("text/css"));
    assert_eq!(header(&plan, "Content-Length"), Some("10"));
    assert_eq!(header(&plan, "Last-Modified"), Some("Mon, 12 Jan 1970 13:46:40 GMT"));
    assert_eq!(header(&plan, "Accept-Ranges"), None);
}

#[test]
fn not_modified() {
    let files = files(&[], false);
    let since = Conditions { if_modified_since: Some("Mon, 12 Jan 1970 13:46:40 GMT"), ..Default::default() };
    assert_eq!(files.plan(&facts(10), &since, 0).status, 304);
    let older = Conditions { if_modified_since: Some("Mon, 12 Jan 1970 13:46:39 GMT"), ..Default::default() };
    assert_eq!(files.plan(&facts(10), &older, 0).status, 200);
    let garbage = Conditions { if_modified_since: Some("yesterday"), ..Default::default() };
    assert_eq!(files.plan(&facts(10), &garbage, 0).status, 200);
}

#[test]
fn ranges_only_with_honour_range() {
    let ranged = files(&[], true);
    let plan = |range: &str| ranged.plan(&facts(100), &Conditions { range: Some(range), ..Default::default() }, 0);
    let part = plan("bytes=10-19");
    assert_eq!((part.status, part.body), (206, Some((10, 10))));
    assert_eq!(header(&part, "Content-Range"), Some("bytes 10-19/100"));
    assert_eq!(plan("bytes=90-").body, Some((90, 10)));
    assert_eq!(plan("bytes=-5").body, Some((95, 5)));
    assert_eq!(plan("bytes=50-500").body, Some((50, 50)));
    let unsatisfiable = plan("bytes=100-");
    assert_eq!((unsatisfiable.status, header(&unsatisfiable, "Content-Range")), (416, Some("bytes */100")));
    assert_eq!(plan("bytes=0-1,5-6").status, 200);
    assert_eq!(plan("items=0-1").status, 200);
    let stale =
        Conditions { range: Some("bytes=0-1"), if_range: Some("Thu, 01 Jan 1970 00:00:00 GMT"), ..Default::default() };
    assert_eq!(ranged.plan(&facts(100), &stale, 0).status, 200);
    let unranged = files(&[], false);
    assert_eq!(
        unranged.plan(&facts(100), &Conditions { range: Some("bytes=0-1"), ..Default::default() }, 0).status,
        200
    );
}

#[test]
fn head_has_no_body() {
    let plan = files(&[], false).plan(&facts(10), &Conditions { head: true, ..Default::default() }, 0);
    assert_eq!((plan.status, plan.body, header(&plan, "Content-Length")), (200, None, Some("10")));
}

#[test]
fn expires_rules() {
    let files = files(
        &[
            (OptionId::StaticExpires, "/* 86400"),
            (OptionId::StaticExpiresUriMtime, "^/static/ 60"),
            (OptionId::StaticExpiresType, "text/css=10"),
        ],
        false,
    );
    let request = Conditions { uri: "/static/app.css", path_info: "/static/app.css", ..Default::default() };
    let plan = files.plan(&facts(1), &request, 0);
    let expires: Vec<_> = plan.headers.iter().filter(|(n, _)| *n == "Expires").map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        expires,
        ["Fri, 02 Jan 1970 00:00:00 GMT", "Mon, 12 Jan 1970 13:47:40 GMT", "Thu, 01 Jan 1970 00:00:10 GMT"]
    );
}

#[test]
fn option_errors() {
    let bad = |id, value: &str| {
        let config = RequestPathConfig {
            static_files: vec![StaticLine {
                id,
                value: value.into(),
                origin: Origin::File { path: "x.ini".into(), line: 3 },
            }],
            ..Default::default()
        };
        StaticFiles::compile(&config).unwrap_err()
    };
    assert_eq!(bad(OptionId::StaticMap, "/static"), "x.ini:3: static-map = /static: expected MOUNTPOINT=DIR");
    assert!(bad(OptionId::StaticExpires, "(unclosed 10").contains("invalid regex"));
    assert!(bad(OptionId::StaticExpires, "/x").contains("REGEX SECONDS"));
    assert!(bad(OptionId::StaticExpiresType, "text/css").contains("TYPE=SECONDS"));
    assert!(bad(OptionId::Mimefile, "/nonexistent/mime.types").contains("cannot read"));
}

#[test]
fn find_refuses_escapes_and_serves_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("static");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("sub/index.html"), "i").unwrap();
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    let map = format!("/static={}", root.display());
    let files = files(&[(OptionId::StaticMap, &map), (OptionId::StaticIndex, "index.html")], false);
    assert!(files.find("GET", "/static/a.txt", None).is_some());
    assert!(files.find("POST", "/static/a.txt", None).is_none());
    assert!(files.find("GET", "/static/../secret", None).is_none());
    assert!(files.find("GET", "/static/link", None).is_none());
    assert!(files.find("GET", "/static/a.txt\0", None).is_none());
    assert!(files.find("GET", "/other/a.txt", None).is_none());
    let index = files.find("GET", "/static/sub", None).unwrap();
    assert!(index.path.ends_with("sub/index.html"));
    // A directory without index falls through.
    let no_index = self::files(&[(OptionId::StaticMap, &map)], false);
    assert!(no_index.find("GET", "/static/sub", None).is_none());
    // static-safe admits the symlink target.
    let safe = dir.path().to_string_lossy().into_owned();
    let with_safe = self::files(&[(OptionId::StaticMap, &map), (OptionId::StaticSafe, &safe)], false);
    assert!(with_safe.find("GET", "/static/link", None).is_some());
}
