//! plumbery's name ranges (`node[1..9]`), expanded before the nodes are read, and why a
//! range does not expand: each message is the diagnostic the operator sees.

use super::MAX_NODES;

/// plumbery's name ranges: `node[1..9]` gives node1 ... node9; `web[01..10]` keeps the
/// zero padding; a name without brackets is itself.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err(format!("`{pattern}` has `]` without `[`"));
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..].find(']').map(|c| open + c).ok_or_else(|| {
        format!("range in `{pattern}` is not closed: expected `name[first..last]`")
    })?;
    let (prefix, inner, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if suffix.contains('[') || suffix.contains(']') {
        return Err(format!("`{pattern}` has more than one range"));
    }
    let (lo_text, hi_text) = inner.split_once("..").ok_or_else(|| {
        format!("bad range `[{inner}]` in `{pattern}`: expected `[first..last]`, such as `[1..9]`")
    })?;
    let parse = |s: &str| -> Result<u64, String> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
            return Err(format!(
                "bad range `[{inner}]` in `{pattern}`: `{s}` is not a number"
            ));
        }
        s.parse()
            .map_err(|_| format!("bad range `[{inner}]` in `{pattern}`: `{s}` is not a number"))
    };
    let (lo, hi) = (parse(lo_text)?, parse(hi_text)?);
    if lo > hi {
        return Err(format!(
            "bad range `[{inner}]` in `{pattern}`: {lo} is greater than {hi}"
        ));
    }
    let count = hi - lo + 1;
    if count > MAX_NODES as u64 {
        return Err(format!(
            "range `[{inner}]` in `{pattern}` gives {count} nodes, more than the limit of {MAX_NODES}"
        ));
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
        assert!(expand_range("node[3..1]").unwrap_err().contains("greater"));
        assert!(expand_range("node[1..x]").is_err());
        assert!(expand_range("node[1-3]").is_err());
        assert!(expand_range("node[1..3").is_err());
        assert!(
            expand_range("node[1..999999999]")
                .unwrap_err()
                .contains("limit")
        );
    }
}
