//! Colour for the terminal only: never in pipes, never with NO_COLOR set (https://no-color.org).

use std::io::IsTerminal;

use crate::checks::finding::Status;

/// Whether standard output should get ANSI colour.
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    pub fn status(&self, status: Status) -> String {
        let word = status.as_str().to_uppercase();
        if !self.enabled {
            return word;
        }
        let code = match status {
            Status::Fail => "1;31",
            Status::Warn => "1;33",
            Status::Pass => "32",
            Status::Info => "36",
            Status::Skip => "2",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }

    /// A verdict word (VERIFIED, FAILED, INCONCLUSIVE), coloured like the status it stands for.
    pub fn outcome(&self, outcome: crate::checks::verdict::Outcome) -> String {
        use crate::checks::verdict::Outcome;
        let word = outcome.as_str().to_uppercase();
        if !self.enabled {
            return word;
        }
        let code = match outcome {
            Outcome::Verified => "1;32",
            Outcome::Failed => "1;31",
            Outcome::Inconclusive => "1;33",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }

    pub fn bold(&self, text: &str) -> String {
        if self.enabled {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
