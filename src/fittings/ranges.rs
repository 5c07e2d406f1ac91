//! plumbery's name ranges (`node[1..9]`), expanded before the nodes are read, and why a
//! range does not expand: each message is the diagnostic the operator sees.

use thiserror::Error;

use super::MAX_NODES;

/// Why a name does not expand. `pattern` is the name as written, `inner` what its brackets
/// hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RangeError {
    #[error("`{pattern}` has `]` without `[`")]
    NotOpened { pattern: String },
    #[error("range in `{pattern}` is not closed: expected `name[first..last]`")]
    NotClosed { pattern: String },
    #[error("`{pattern}` has more than one range")]
    SeveralRanges { pattern: String },
    #[error("bad range `[{inner}]` in `{pattern}`: expected `[first..last]`, such as `[1..9]`")]
    NoDots { pattern: String, inner: String },
    #[error("bad range `[{inner}]` in `{pattern}`: `{bound}` is not a number")]
    NotANumber {
        pattern: String,
        inner: String,
        bound: String,
    },
    #[error("bad range `[{inner}]` in `{pattern}`: {first} is greater than {last}")]
    Reversed {
        pattern: String,
        inner: String,
        first: u64,
        last: u64,
    },
    #[error(
        "range `[{inner}]` in `{pattern}` gives {count} nodes, more than the limit of {limit}",
        limit = MAX_NODES
    )]
    TooMany {
        pattern: String,
        inner: String,
        count: u64,
    },
}

/// plumbery's name ranges: `node[1..9]` gives node1 ... node9; `web[01..10]` keeps the
/// zero padding; a name without brackets is itself.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, RangeError> {
    let owned = || pattern.to_string();
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err(RangeError::NotOpened { pattern: owned() });
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| RangeError::NotClosed { pattern: owned() })?;
    let (prefix, inner, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if suffix.contains('[') || suffix.contains(']') {
        return Err(RangeError::SeveralRanges { pattern: owned() });
    }
    let (lo_text, hi_text) = inner.split_once("..").ok_or_else(|| RangeError::NoDots {
        pattern: owned(),
        inner: inner.to_string(),
    })?;
    let parse = |s: &str| -> Result<u64, RangeError> {
        let s = s.trim();
        let not_a_number = || RangeError::NotANumber {
            pattern: owned(),
            inner: inner.to_string(),
            bound: s.to_string(),
        };
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
            return Err(not_a_number());
        }
        s.parse().map_err(|_| not_a_number())
    };
    let (lo, hi) = (parse(lo_text)?, parse(hi_text)?);
    if lo > hi {
        return Err(RangeError::Reversed {
            pattern: owned(),
            inner: inner.to_string(),
            first: lo,
            last: hi,
        });
    }
    let count = hi - lo + 1;
    if count > MAX_NODES as u64 {
        return Err(RangeError::TooMany {
            pattern: owned(),
            inner: inner.to_string(),
            count,
        });
    }
    let width = if lo_text.trim().starts_with('0') && lo_text.trim().len() > 1 {
        lo_text.trim().len()
    } else {
        0
    };
    Ok((lo..=hi)
        .map(|i| format!("{prefix}{i:0width$}{suffix}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand() {
        assert_eq!(
            expand_range("node[1..3]").unwrap(),
            ["node1", "node2", "node3"]
        );
        assert_eq!(
            expand_range("web[08..10]-a").unwrap(),
            ["web08-a", "web09-a", "web10-a"]
        );
        assert_eq!(expand_range("plain").unwrap(), ["plain"]);
        assert_eq!(
            expand_range("node[3..1]").unwrap_err().to_string(),
            "bad range `[3..1]` in `node[3..1]`: 3 is greater than 1"
        );
        assert!(expand_range("node[1..x]").is_err());
        assert!(expand_range("node[1-3]").is_err());
        assert!(expand_range("node[1..3").is_err());
        assert!(
            expand_range("node[1..999999999]")
                .unwrap_err()
                .to_string()
                .contains("limit of 100000")
        );
    }
}
