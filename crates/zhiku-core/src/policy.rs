use std::str::FromStr;

use serde::Serialize;

/// What ingestion does with a chunk that contains personal data or secrets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PiiPolicy {
    /// Index as is (findings are still counted in the report).
    #[default]
    Keep,
    /// Replace each finding by a placeholder such as `[EMAIL]` before embedding and storing.
    Mask,
    /// Leave chunks with findings out of the knowledge base.
    DropChunk,
}

impl FromStr for PiiPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Self::Keep),
            "mask" => Ok(Self::Mask),
            "drop-chunk" => Ok(Self::DropChunk),
            other => Err(format!("unknown PII policy '{other}': use keep, mask or drop-chunk")),
        }
    }
}

impl PiiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Mask => "mask",
            Self::DropChunk => "drop-chunk",
        }
    }
}

/// What ingestion does with a file whose content is already in the knowledge base (the same
/// bytes, or nearly the same text) under another source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Report it and leave it out: search results are not crowded by copies.
    #[default]
    Skip,
    /// Report it and index it anyway (each copy may carry its own ACL or provenance).
    Keep,
}

impl FromStr for DuplicatePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "keep" => Ok(Self::Keep),
            other => Err(format!("unknown duplicate policy '{other}': use skip or keep")),
        }
    }
}

impl DuplicatePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Keep => "keep",
        }
    }
}
