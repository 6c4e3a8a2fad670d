//! Terminal, JSON, chart and HTML output.

pub mod charts;
pub mod fairness;
