//! Text from outside (a caller's request, a plugin's output or error, an
//! upstream's message) as a log field. In the text log format a field is
//! written as it is, so a line break in it would start a line of its own,
//! one that could pass for the host's: control characters are escaped
//! (`\n`, `\r`, `\u{1b}`, ...). The JSON format escapes them itself.

use std::borrow::Cow;

/// `text` with its control characters escaped as Rust writes them.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_debug());
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_escapes_cannot_start_a_line() {
        assert_eq!(escaped("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(escaped("a\n2026 WARN forged\r\u{1b}[31m"), "a\\n2026 WARN forged\\r\\u{1b}[31m");
    }
}
