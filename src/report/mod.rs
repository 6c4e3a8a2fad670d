//! Terminal, JSON, chart and HTML output.

pub mod flows;
pub mod inspect;
pub mod style;
pub mod time;
pub mod verify;
