//! Placeholder.
/// A TOC header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// Object name.
    pub name: String,
}
