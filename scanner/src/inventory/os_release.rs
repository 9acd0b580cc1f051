//! `os-release` (freedesktop.org): which distribution and release the image is, for the ecosystem of its system
//! packages.

use serde::{Deserialize, Serialize};

/// The distribution an image says it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// `ID`: `debian`, `alpine`, `rocky`…; empty when the file has none.
    pub id: String,
    /// `VERSION_ID`: `12`, `3.20.3`; absent on rolling releases (Debian testing, Alpine edge).
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

/// Reads `KEY=value` lines; values may be quoted with `"` or `'`, and inside `"…"` a backslash escapes the next
/// character, as the format's shell-compatible syntax allows.
pub(super) fn parse(text: &str) -> Distro {
    let mut distro = Distro::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else { continue };
        let value = unquote(value.trim());
        match key {
            "ID" => distro.id = value,
            "VERSION_ID" => distro.version_id = Some(value),
            "PRETTY_NAME" => distro.pretty_name = Some(value),
            _ => {}
        }
    }
    distro
}

fn unquote(value: &str) -> String {
    if let Some(single) = value.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')) {
        return single.to_owned();
    }
    let Some(double) = value.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) else { return value.to_owned() };
    let mut unescaped = String::with_capacity(double.len());
    let mut characters = double.chars();
    while let Some(character) = characters.next() {
        unescaped.extend(if character == '\\' { characters.next() } else { Some(character) });
    }
    unescaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debians_os_release() {
        let distro = parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n\
             ID=debian\nHOME_URL=\"https://www.debian.org/\"\n",
        );
        assert_eq!(
            distro,
            Distro { id: "debian".into(), version_id: Some("12".into()), pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()) }
        );
    }

    #[test]
    fn quotes_and_escapes_are_removed() {
        let distro = parse("# comment\nID='rocky'\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\n");
        assert_eq!(distro, Distro { id: "rocky".into(), version_id: Some("9.4".into()), pretty_name: Some("A \"quoted\" name".into()) });
    }
}
