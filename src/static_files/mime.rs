//! File extension → content type, as uWSGI: the `mimefile`s (default `/etc/mime.types`) first, then (unlike
//! uWSGI, which sends no Content-Type for an unknown extension) `mime_guess`'s built-in table, so a host
//! without `/etc/mime.types` (slim containers) still sends `text/css` for `.css`.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default)]
pub struct MimeTable {
    by_extension: HashMap<String, String>,
}

impl MimeTable {
    /// Reads `files` (or `/etc/mime.types` when none is given and it exists). A named file that cannot be
    /// read is an error; the default one is optional.
    pub fn load(files: &[(String, String)]) -> Result<Self, String> {
        let mut table = Self::default();
        if files.is_empty() {
            if let Ok(text) = std::fs::read_to_string("/etc/mime.types") {
                table.add(&text);
            }
        }
        for (path, origin) in files {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("{origin}: mimefile = {path}: cannot read it: {err}"))?;
            table.add(&text);
        }
        Ok(table)
    }

    /// `type ext ext...` lines; `#` comments. A later file's mapping wins, as uWSGI prepends.
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(mime) = words.next() else { continue };
            for extension in words {
                self.by_extension.insert(extension.to_ascii_lowercase(), mime.to_owned());
            }
        }
    }

    /// The type of `path` by its extension: what follows the last `.`, when only letters and digits follow it
    /// (uWSGI's rule: `archive.tar.gz` is `gz`, `README` has none).
    pub fn lookup(&self, path: &Path) -> Option<String> {
        let name = path.file_name()?.to_str()?;
        let dot = name.rfind('.')?;
        let extension = &name[dot + 1..];
        if extension.is_empty() || !extension.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let extension = extension.to_ascii_lowercase();
        if let Some(mime) = self.by_extension.get(&extension) {
            return Some(mime.clone());
        }
        mime_guess::from_ext(&extension).first_raw().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_builtin() {
        let mut table = MimeTable::default();
        table.add("# comment\ntext/x-custom  css foo\napplication/json json\n");
        assert_eq!(table.lookup(Path::new("/a/b.CSS")).as_deref(), Some("text/x-custom"));
        assert_eq!(table.lookup(Path::new("/a/b.png")).as_deref(), Some("image/png"));
        assert_eq!(table.lookup(Path::new("/a/README")), None);
        assert_eq!(table.lookup(Path::new("/a/x.tar.gz")).as_deref(), Some("application/gzip"));
        assert_eq!(table.lookup(Path::new("/a/x.we-ird")), None);
    }
}
