//! Vassal files through liege-config's public entry points: `ini::decode` + `ini::parse` (the line reader),
//! then `load_ini` (includes, placeholders, magic variables, `$(ENV)`) and `VassalConfig::from_raw` /
//! `EmperorConfig::from_raw` (typing and cross-option checks), exactly as the emperor reads a vassal file.
//!
//! The input is up to three files separated by a 0xFF byte (never valid UTF-8, so it cannot appear inside a
//! file the fuzzer means to be readable): `main.ini`, `common.ini`, `other.ini`, written to a private temp
//! directory so that `ini = common.ini` and `%(...)` across includes, cycles included, are reachable.
//!
//! Properties beyond "no panic" (and no hang, no stack overflow on include loops):
//! - the line reader ignores line endings: the same text with CRLF gives the same entries, and a leading
//!   UTF-8 BOM is skipped;
//! - every entry has a non-empty trimmed key and a line number inside the file;
//! - every error message is non-empty and starts with where the problem is (a file path or "command line").
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use liege_config::{ini, load_ini, EmperorConfig, VassalConfig};

const FILES: [&str; 3] = ["main.ini", "common.ini", "other.ini"];

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // /dev/shm when there is one: this target writes files on every run.
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new().prefix("liege-fuzz-ini-").tempdir_in(base).expect("temp dir");
        dir.keep()
    })
}

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/fuzz".to_owned()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("8000".to_owned()),
        "PCT" => Some("%(x)%n".to_owned()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    let mut texts = Vec::new();
    for name in FILES {
        let part = parts.next().unwrap_or(b"");
        std::fs::write(dir.join(name), part).expect("write fuzz file");
        texts.push(part);
    }

    // The line reader on its own.
    if let Ok(text) = ini::decode(texts[0].to_vec()) {
        let lines = text.split('\n').count();
        let sections = ["uwsgi", "", "app"];
        for section in sections {
            let plain = ini::parse(&text, section);
            if let Ok(parsed) = &plain {
                for entry in &parsed.entries {
                    assert!(!entry.key.is_empty() && entry.key.trim() == entry.key);
                    assert!(entry.line >= 1 && entry.line <= lines);
                    if let Some(value) = &entry.value {
                        assert_eq!(value.trim(), value);
                    }
                }
            }
            let crlf = ini::parse(&text.replace('\n', "\r\n"), section);
            assert_eq!(plain, crlf, "CRLF line ends changed the result");
            if !text.starts_with('\u{feff}') {
                let bom = ini::parse(&format!("\u{feff}{text}"), section);
                assert_eq!(plain, bom, "a leading BOM changed the result");
            }
        }
    }

    // The whole reader, as the emperor runs it on a vassal file.
    let main = dir.join(FILES[0]);
    let main = main.to_str().expect("utf-8 temp path");
    let raw = match load_ini(main, &env) {
        Ok(raw) => raw,
        Err(error) => {
            check_message(&error.to_string());
            return;
        }
    };
    if let Err(error) = VassalConfig::from_raw(raw.clone(), Some("main")) {
        check_message(&error.to_string());
    }
    if let Err(error) = EmperorConfig::from_raw(raw) {
        check_message(&error.to_string());
    }
});

fn check_message(message: &str) {
    assert!(!message.is_empty());
    assert!(message.starts_with('/') || message.starts_with("command line"), "error without a place: {message}");
}
