//! Diagnostics: problems found in a plan, each tied to a position in the file the operator
//! wrote, printed as `FILE:LINE:COLUMN: error: message` with the offending line underneath.
//!
//! Positions are recorded against the text that was parsed, which is the operator's file with
//! `{{ parameter.x }}` already substituted; [`SourceFile`] maps them back to the original so a
//! column never lies, whatever length a parameter's value has.

use std::fmt::Write as _;

use serde::Serialize;

use crate::yaml::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, with the span it is about (in parsed-text offsets) when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Option<Span>,
    pub message: String,
    /// A short note printed under the excerpt, e.g. "did you mean `nodes`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: impl Into<Option<Span>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span: span.into(),
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: impl Into<Option<Span>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// Collects diagnostics while a stage runs, so that every problem is reported at once.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn error(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Diagnostic::error(span, message));
    }

    pub fn warning(&mut self, span: impl Into<Option<Span>>, message: impl Into<String>) {
        self.push(Diagnostic::warning(span, message));
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Sorted by position, duplicates removed: a class merged into nine nodes reports its
    /// problem once, not nine times.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by(|a, b| {
            (a.span.map(|s| s.start), a.span.map(|s| s.end), &a.message).cmp(&(
                b.span.map(|s| s.start),
                b.span.map(|s| s.end),
                &b.message,
            ))
        });
        self.diagnostics.dedup();
        self.diagnostics
    }
}

/// A text replaced by the parameter pass: `parsed[parsed_start..parsed_end]` was
/// `original[original_start..original_end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Substitution {
    pub parsed_start: usize,
    pub parsed_end: usize,
    pub original_start: usize,
    pub original_end: usize,
    /// Where the parameter's default is written, when the value is that default (not a
    /// `-p` value): an error the value causes is shown where it is used, and pointed back
    /// there.
    pub default_at: Option<usize>,
}

/// A plan file: its name as the operator gave it, its original text, and how the parsed
/// text relates to it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub original: String,
    /// Sorted by `parsed_start`.
    pub substitutions: Vec<Substitution>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, original: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            original: original.into(),
            substitutions: Vec::new(),
        }
    }

    /// Maps an offset of the parsed text to the original text. Inside a substituted value
    /// it maps to the start of the `{{ parameter.x }}` that produced it.
    pub fn original_offset(&self, parsed: usize) -> usize {
        let idx = self
            .substitutions
            .partition_point(|s| s.parsed_start <= parsed);
        let offset = match idx.checked_sub(1).map(|i| self.substitutions[i]) {
            None => parsed,
            Some(s) if parsed < s.parsed_end => s.original_start,
            Some(s) => s.original_end + (parsed - s.parsed_end),
        };
        offset.min(self.original.len())
    }

    pub fn original_span(&self, span: Span) -> Span {
        let start = self.original_offset(span.start);
        let end = self.original_offset(span.end.saturating_sub(1)) + 1;
        Span::new(start, end.min(self.original.len()))
    }

    /// 1-based line and column (in characters) of an original offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.original.len());
        while !self.original.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.original[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.original[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// Renders one diagnostic:
    ///
    /// ```text
    /// plan.yaml:12:7: error: unknown key `nodez` in blueprint `web`
    ///    |
    /// 12 |       nodez:
    ///    |       ^^^^^ did you mean `nodes`?
    /// ```
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let Some(span) = diagnostic.span else {
            let _ = writeln!(out, "{}: {severity}: {}", self.name, diagnostic.message);
            if let Some(help) = &diagnostic.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return out;
        };
        let from_default = self.default_behind(span);
        let span = self.original_span(span);
        let (line, col) = self.line_col(span.start);
        let _ = writeln!(
            out,
            "{}:{line}:{col}: {severity}: {}",
            self.name, diagnostic.message
        );
        let line_text = self.original.lines().nth(line - 1).unwrap_or("");
        let gutter = line.to_string().len();
        let line_start = self.original[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = line_start + line_text.len();
        let underline_end = span.end.clamp(span.start + 1, line_end.max(span.start + 1));
        let width = self
            .original
            .get(span.start..underline_end.min(self.original.len()))
            .map_or(1, |s| s.chars().count().max(1));
        let shown: String = line_text
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {shown}");
        let _ = write!(
            out,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(col - 1),
            "^".repeat(width)
        );
        match &diagnostic.help {
            Some(help) => {
                let _ = writeln!(out, " {help}");
            }
            None => out.push('\n'),
        }
        if let Some((name, at)) = from_default {
            let (line, col) = self.line_col(at);
            let _ = writeln!(
                out,
                "{:gutter$} = note: the value is parameter `{name}`'s default, at {}:{line}:{col}",
                "", self.name
            );
        }
        out
    }

    /// The parameter whose default was substituted where `parsed` lies, and where that
    /// default is written.
    fn default_behind(&self, parsed: Span) -> Option<(&str, usize)> {
        let s = self.substitutions.iter().find(|s| {
            s.default_at.is_some()
                && parsed.start < s.parsed_end.max(s.parsed_start + 1)
                && parsed.end.max(parsed.start + 1) > s.parsed_start
        })?;
        let token = &self.original[s.original_start..s.original_end];
        let name = token
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim()
            .strip_prefix("parameter.")?;
        Some((name, s.default_at?))
    }

    /// Renders all diagnostics and a closing count.
    pub fn render_all(&self, diagnostics: &[Diagnostic]) -> String {
        let mut out = String::new();
        for d in diagnostics {
            out.push_str(&self.render(d));
            out.push('\n');
        }
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = diagnostics.len() - errors;
        if errors > 0 {
            let _ = writeln!(
                out,
                "{}: {} error{}{}",
                self.name,
                errors,
                plural(errors),
                if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                }
            );
        }
        out
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_back_through_substitutions() {
        // original: "a: {{ parameter.x }}\nb: 1"  parsed: "a: longer-value\nb: 1"
        let original = "a: {{ parameter.x }}\nb: 1";
        let mut file = SourceFile::new("p.yaml", original);
        file.substitutions.push(Substitution {
            parsed_start: 3,
            parsed_end: 15,
            original_start: 3,
            default_at: None,
            original_end: 20,
        });
        assert_eq!(file.original_offset(0), 0);
        assert_eq!(file.original_offset(5), 3);
        assert_eq!(file.original_offset(16), 21);
        assert_eq!(file.line_col(file.original_offset(19)), (2, 4));
    }

    #[test]
    fn renders_position_excerpt_and_help() {
        let file = SourceFile::new("p.yaml", "x: 1\nnodez: []\n");
        let d = Diagnostic::error(Span::new(5, 10), "unknown key `nodez`")
            .with_help("did you mean `nodes`?");
        assert_eq!(
            file.render(&d),
            "p.yaml:2:1: error: unknown key `nodez`\n  |\n2 | nodez: []\n  | ^^^^^ did you mean `nodes`?\n"
        );
    }
}
