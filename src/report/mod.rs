//! Terminal, JSON, chart and HTML output.

pub mod charts;
pub mod fairness;
pub mod flows;
pub mod inspect;
pub mod style;
pub mod time;
pub mod verify;
