//! `liege --help`, generated from the option table so it can never disagree with what is parsed.

use std::fmt::Write;

use crate::options::{OptionDef, OptionGroup, OptionKind, OPTIONS};

/// Options and their value names are padded to this column; longer ones push their description right.
const DESCRIPTION_COLUMN: usize = 44;

/// The text of `liege --help`: usage, then every option by group, with all its spellings and one line of
/// description.
pub fn help_text() -> String {
    let mut text = format!(
        "liege {version} - a uWSGI-compatible application server for Python WSGI apps\n\
         \n\
         Usage:\n\
         \x20 liege [OPTIONS] [FILE.ini[:SECTION] ...] [APP.py]   run one app (a vassal)\n\
         \x20 liege emperor DIR [OPTIONS]                         run the emperor: one vassal per *.ini in DIR\n\
         \x20 liege --emperor DIR [OPTIONS]                       the same, uWSGI's spelling\n\
         \x20 liege ... --check-config                            read the configuration, print it resolved, exit\n\
         \x20 liege --help | --version\n\
         \n\
         Every option works on the command line (--name VALUE, --name=VALUE, or the short -x form shown) and\n\
         as a `name = value` line in the [uwsgi] section of an ini file; command line and files are merged\n\
         in order, the last value of a single-valued option wins. In files, magic variables (%n %d %p %c %x\n\
         %0-%9 %h %k %t %u %U...) refer to the file, $(NAME) to the environment and %(name) to an option or\n\
         placeholder set earlier, @(FILE) to a file's contents, %(a * b) to arithmetic. Config logic: if-env,\n\
         if-exists, if-file, if-dir, if-opt (and if-not-*), else, endif; for, for-glob, for-times, for-readline\n\
         to endfor, %(_) being the item. Numbers are read by their leading digits and flags are true unless\n\
         false/off/no/0, as uWSGI; odd values get a warning. Unknown options are errors (warnings with\n\
         strict = false), unless referred to as %(name) later; uWSGI options liege lacks are errors that say so.\n",
        version = crate::VERSION
    );
    for group in OptionGroup::ALL {
        let _ = write!(text, "\n{}:\n", group.title());
        for def in OPTIONS.iter().filter(|def| def.group == group) {
            let spellings = spellings(def);
            let padding = DESCRIPTION_COLUMN.saturating_sub(spellings.chars().count() + 2).max(2);
            let _ = writeln!(text, "  {spellings}{:padding$}{}", "", def.help);
        }
    }
    text
}

/// `-p, --processes, --workers N` / `--chmod-socket[=MODE]` / `-M, --master`.
fn spellings(def: &OptionDef) -> String {
    let mut names: Vec<String> = def.short.map(|letter| format!("-{letter}")).into_iter().collect();
    names.extend(def.long_names().map(|name| format!("--{name}")));
    let names = names.join(", ");
    match def.kind {
        OptionKind::Flag => names,
        OptionKind::OptionalValue { .. } => format!("{names}[={}]", def.value_name),
        OptionKind::Scalar | OptionKind::List => format!("{names} {}", def.value_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_every_spelling_of_every_option_with_its_help() {
        let text = help_text();
        for def in OPTIONS {
            for name in def.long_names() {
                assert!(text.contains(&format!("--{name}")), "--help does not mention --{name}");
            }
            if let Some(letter) = def.short {
                assert!(text.contains(&format!("-{letter},")), "--help does not mention -{letter}");
            }
            assert!(text.contains(def.help), "--help lacks the description of {}", def.name);
        }
    }

    #[test]
    fn has_usage_and_every_group() {
        let text = help_text();
        assert!(text.contains("liege [OPTIONS]"));
        assert!(text.contains("liege emperor DIR"));
        assert!(text.contains("liege --emperor DIR"));
        for group in OptionGroup::ALL {
            assert!(text.contains(group.title()), "missing group {:?}", group);
        }
    }

    #[test]
    fn option_lines_are_one_line_each() {
        let text = help_text();
        let processes = text.lines().find(|line| line.contains("--processes")).unwrap();
        assert!(processes.starts_with("  -p, --processes, --workers N "), "{processes}");
        assert!(processes.ends_with(crate::options::lookup("processes").unwrap().help));
        let chmod = text.lines().find(|line| line.contains("--chmod-socket")).unwrap();
        assert!(chmod.contains("-C, --chmod-socket, --chmod[=MODE]"), "{chmod}");
    }
}
