//! Backslash escapes in command-line arguments (`-D '\x00'`, `--format '%k\t%v\n'`), so that
//! any byte, NUL included, can be named from a shell.

/// Bytes named on the command line (clap would take a bare `Vec<u8>` for many `u8` values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escaped(pub Vec<u8>);

/// `unescape` for clap.
pub fn escaped(text: &str) -> Result<Escaped, String> {
    unescape(text).map(Escaped)
}

/// Decodes `\n \r \t \0 \\ \xHH` (two hex digits); any other backslash is refused, so a typo
/// is not silently taken literally.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        index += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let Some(&code) = bytes.get(index) else {
            return Err(format!("{text:?} ends with a lone backslash"));
        };
        index += 1;
        out.push(match code {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'x' => {
                let hex = bytes
                    .get(index..index + 2)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("{text:?}: \\x takes two hex digits"))?;
                index += 2;
                hex
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown escape \\{} (use \\n \\r \\t \\0 \\\\ or \\xHH)",
                    other as char
                ));
            }
        });
    }
    Ok(out)
}

/// A non-empty delimiter, escapes decoded.
pub fn delimiter(text: &str) -> Result<Escaped, String> {
    let bytes = unescape(text)?;
    if bytes.is_empty() {
        return Err("the delimiter is empty".into());
    }
    Ok(Escaped(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_name_every_byte() {
        assert_eq!(unescape(r"a\tb\n").unwrap(), b"a\tb\n");
        assert_eq!(unescape(r"\0\x00\xff\\").unwrap(), [0, 0, 255, b'\\']);
        assert!(unescape(r"\q").is_err());
        assert!(unescape(r"\x1").is_err());
        assert!(unescape("end\\").is_err());
        assert!(delimiter("").is_err());
    }
}
