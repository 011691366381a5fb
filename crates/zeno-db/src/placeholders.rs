//! Laravel and PDO write `?` placeholders; PostgreSQL wants `$1, $2, …`. The rewrite must
//! leave alone every `?` that is not a placeholder: inside string literals (`'…'`, `E'…'`),
//! quoted identifiers (`"…"`), comments (`-- …`, nested `/* … */`) and dollar-quoted strings
//! (`$tag$ … $tag$`). As in PDO, `??` is an escaped literal `?` (the jsonb `?` operator).

/// The SQL with `?` placeholders numbered `$1…`, and how many there were.
pub fn rewrite_for_postgres(sql: &str) -> (String, usize) {
    rewrite_with(sql, |n| format!("${n}"))
}

/// Like [`rewrite_for_postgres`], with each placeholder rendered by `render(n)` (1-based).
pub fn rewrite_with(sql: &str, mut render: impl FnMut(usize) -> String) -> (String, usize) {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    let mut i = 0;
    // Copy runs of bytes verbatim; every branch below advances `i` past what it copied.
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                let escapes =
                    i > 0 && matches!(bytes[i - 1], b'E' | b'e') && !is_ident(bytes, i - 1);
                let end = quoted_end(bytes, i, b'\'', escapes);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'"' => {
                let end = quoted_end(bytes, i, b'"', false);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = bytes[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(bytes, i);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_len) => {
                    let tag = &bytes[i..i + tag_len];
                    let body = i + tag_len;
                    let end = find(bytes, body, tag).map_or(bytes.len(), |p| p + tag_len);
                    out.push_str(&sql[i..end]);
                    i = end;
                }
                None => {
                    out.push('$');
                    i += 1;
                }
            },
            b'?' if bytes.get(i + 1) == Some(&b'?') => {
                out.push('?');
                i += 2;
            }
            b'?' => {
                count += 1;
                out.push_str(&render(count));
                i += 1;
            }
            _ => {
                // Copy up to the next byte that may start something interesting.
                let next = bytes[i + 1..]
                    .iter()
                    .position(|c| matches!(c, b'\'' | b'"' | b'-' | b'/' | b'$' | b'?'))
                    .map_or(bytes.len(), |p| i + 1 + p);
                out.push_str(&sql[i..next]);
                i = next;
            }
        }
    }
    (out, count)
}

/// Whether the byte at `at` continues an identifier (so `nameE'x'` is not an E-string).
fn is_ident(bytes: &[u8], at: usize) -> bool {
    at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_')
}

/// End (exclusive) of a quoted run starting at `start`; a doubled quote is an escape, and in
/// E-strings so is a backslash. An unterminated run ends at the end of the input.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Length of a dollar-quote tag (`$$` or `$name$`) starting at `start`, if there is one.
/// `$1` (a positional parameter) is not a tag.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'$' {
            return Some(i - start + 1);
        }
        let valid = b.is_ascii_alphabetic() || b == b'_' || (i > start + 1 && b.is_ascii_digit());
        if !valid {
            return None;
        }
        i += 1;
    }
    None
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::rewrite_for_postgres as rw;

    #[test]
    fn numbers_plain_placeholders() {
        assert_eq!(
            rw("select * from t where a = ? and b in (?, ?)"),
            ("select * from t where a = $1 and b in ($2, $3)".into(), 3)
        );
        assert_eq!(rw("select 1"), ("select 1".into(), 0));
    }

    #[test]
    fn leaves_literals_identifiers_and_comments_alone() {
        assert_eq!(
            rw("select '?', 'it''s ?', \"we?ird\" from t -- what?\nwhere x = ? /* a ? /* nested ? */ b? */ and y = ?"),
            (
                "select '?', 'it''s ?', \"we?ird\" from t -- what?\nwhere x = $1 /* a ? /* nested ? */ b? */ and y = $2".into(),
                2
            )
        );
    }

    #[test]
    fn escape_strings_and_dollar_quotes() {
        assert_eq!(
            rw(r"select E'a\'?' , ?"),
            (r"select E'a\'?' , $1".into(), 1)
        );
        assert_eq!(
            rw("select $$ what? $$, $fn$ ? $fn$, ?"),
            ("select $$ what? $$, $fn$ ? $fn$, $1".into(), 1)
        );
        // A positional parameter is not a dollar quote.
        assert_eq!(rw("select $1, ?"), ("select $1, $1".into(), 1));
    }

    #[test]
    fn double_question_mark_is_a_literal_operator() {
        assert_eq!(
            rw("select data ?? 'key', data ??| array[?] from t where id = ?"),
            (
                "select data ? 'key', data ?| array[$1] from t where id = $2".into(),
                2
            )
        );
    }

    #[test]
    fn unterminated_constructs_do_not_panic() {
        for sql in [
            "select 'abc ?",
            "select \"x",
            "select /* ?",
            "select $tag$ ?",
            "?",
            "'",
            "$",
            "-",
            "E'",
        ] {
            let _ = rw(sql);
        }
        assert_eq!(rw("select 'abc ?").1, 0);
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(
            rw("select 'héllo ?', ? -- ünï"),
            ("select 'héllo ?', $1 -- ünï".into(), 1)
        );
    }
}
