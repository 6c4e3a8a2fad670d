//! Terminal, JSON, chart and HTML output.
