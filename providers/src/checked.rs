//! Strings read from a cloud's answers, checked for shape while they are deserialised
//! (`#[serde(try_from = "String")]`): a value of the wrong shape fails at its field instead
//! of travelling on into a path, a message or a file. Each cloud's `answer.rs` declares its
//! kinds with [`checked_string`].

/// A string newtype checked by `$fits` while it is deserialised; `$what` ends the error
/// (`"x y" is not <what>`). It reads as a `&str` and compares with one.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $fits:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                let fits: fn(&str) -> bool = $fits;
                if fits(&s) {
                    Ok($name(s))
                } else {
                    Err(format!("{} is not {}", $crate::checked::quoted(&s), $what))
                }
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// The longest name, tag or text the API takes.
pub(crate) const MAX_LEN: usize = 255;

/// A value in an error message: escaped (no control character reaches a terminal or a log)
/// and cut short (a megabyte of garbage is not repeated).
pub(crate) fn quoted(s: &str) -> String {
    const SHOWN: usize = 40;
    let head: String = s.chars().take(SHOWN).collect();
    if s.chars().nth(SHOWN).is_some() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

/// 1 to 255 characters, each a letter, a digit, or one of `extra`.
pub(crate) fn word_of(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

pub(crate) use checked_string;

checked_string!(
    /// An SSH key's MD5 fingerprint: 16 hex pairs separated by colons.
    Fingerprint,
    "an MD5 fingerprint (16 colon-separated hex pairs)",
    |s| {
        let pairs: Vec<&str> = s.split(':').collect();
        pairs.len() == 16
            && pairs
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    }
);
