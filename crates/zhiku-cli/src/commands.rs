use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use zhiku_core::{Caller, Principal};
use zhiku_models::{registry, BertEmbedder, ChatMessage, ChatModel, GenerationOptions, LlamaGenerator, WordPieceCounter};
use zhiku_rag::{Engine, FileOutcome, IngestEvent, IngestOptions};
use zhiku_store::Store;

use crate::cli::{AskArgs, Cli, Command, EmbedArgs, GenerateArgs, IngestArgs, KbCommand, ParseArgs, SearchArgs, ServeArgs, VectorsCommand};
use crate::config::Config;
use crate::governance::{self, audit};

/// Exit code of an ingest where some files failed and the rest went in.
pub(crate) const EXIT_PARTIAL: u8 = 3;

pub(crate) struct Ctx {
    pub data_dir: PathBuf,
    pub config: Config,
}

/// Commands that read no stored state work the same with either backend.
fn stateless(command: &Command) -> bool {
    matches!(
        command,
        Command::Setup
            | Command::Parse(_)
            | Command::Embed(_)
            | Command::Generate(_)
            | Command::Models(_)
            | Command::Quantize { .. }
            | Command::Vectors(_)
    )
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = match cli.data_dir {
        Some(d) => d,
        None => directories::ProjectDirs::from("", "", "zhiku")
            .map(|p| p.data_dir().to_path_buf())
            .context("cannot find a home directory for the default data dir; pass --data-dir or set ZHIKU_DATA_DIR")?,
    };
    let config = Config::load(cli.config.as_deref(), &data_dir)?;
    let ctx = Ctx { data_dir, config };
    if let Some(url) = cli.database_url.as_deref().filter(|u| !u.is_empty()) {
        return match cli.command {
            Command::Ingest(args) => crate::cluster::ingest(&ctx, url, args),
            Command::Search(args) => crate::cluster::search(&ctx, url, args),
            Command::Ask(args) => crate::cluster::ask(&ctx, url, args),
            Command::Worker(args) => crate::cluster::worker(&ctx, url, args),
            Command::Jobs(args) => crate::cluster::jobs(&ctx, url, args),
            Command::Group(cmd) => crate::cluster::group(&ctx, url, cmd),
            Command::Kb(cmd) => crate::cluster::kb(&ctx, url, cmd),
            Command::Serve(args) => crate::cluster::serve(&ctx, url, args),
            Command::Key(cmd) => crate::cluster::key(&ctx, url, cmd),
            Command::Audit(cmd) => crate::cluster::audit_command(&ctx, url, cmd),
            Command::User(cmd) => {
                let engine = crate::cluster::connect(&ctx, url)?;
                crate::governance::user_on(&engine, &engine, cmd)
            }
            Command::Ldap(cmd) => {
                let engine = crate::cluster::connect(&ctx, url)?;
                crate::governance::ldap_on(&ctx, &engine, &engine, cmd)
            }
            command @ Command::Migrate { .. } => dispatch(&ctx, command),
            command if stateless(&command) => dispatch(&ctx, command),
            _ => bail!("this command works on the embedded store only so far; run it without --database-url / ZHIKU_DATABASE_URL"),
        };
    }
    dispatch(&ctx, cli.command)
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode> {
    match command {
        Command::Setup => setup(ctx),
        Command::Ingest(args) => ingest(ctx, args),
        Command::Parse(args) => parse(ctx, args),
        Command::Search(args) => search(ctx, args),
        Command::Ask(args) => ask(ctx, args),
        Command::Embed(args) => embed(ctx, args),
        Command::Generate(args) => generate(ctx, args),
        Command::Kb(cmd) => kb(ctx, cmd),
        Command::User(cmd) => governance::user(ctx, cmd),
        Command::Group(cmd) => governance::group(ctx, cmd),
        Command::Audit(cmd) => governance::audit_command(ctx, cmd),
        Command::Ldap(cmd) => governance::ldap(ctx, cmd),
        Command::Models(cmd) => crate::ops::models(ctx, cmd),
        Command::Graph(cmd) => crate::graph::graph(ctx, cmd),
        Command::Backup { out, json } => crate::ops::backup(ctx, &out, json),
        Command::Restore { from, json } => crate::ops::restore(ctx, &from, json),
        Command::Finetune(cmd) => crate::finetune::finetune(ctx, cmd),
        Command::Eval(cmd) => crate::ops::eval(ctx, cmd),
        Command::Quantize { input, out, kind, allow_requantize, threads, json } => {
            crate::ops::quantize(&input, &out, &kind, allow_requantize, threads, json)
        }
        Command::Vectors(VectorsCommand::Bench(args)) => crate::vectors::bench(*args),
        Command::Serve(args) => serve(ctx, args, None),
        Command::Key(cmd) => governance::key(ctx, cmd),
        Command::Migrate { to, json } => crate::cluster::migrate(ctx, &to, json),
        Command::Worker(_) | Command::Jobs(_) => {
            bail!("the job queue lives in a shared database: pass --database-url or set ZHIKU_DATABASE_URL")
        }
    }
}

fn ensure_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}; choose another with --data-dir", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("data dir {} is not writable; fix its permissions or choose another with --data-dir", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub(crate) fn open_store(ctx: &Ctx) -> Result<Arc<Store>> {
    ensure_data_dir(&ctx.data_dir)?;
    let key = match ctx.config.store.encryption_key_file.as_str() {
        "" => None,
        file => Some(zhiku_store::StoreKey::from_file(Path::new(file))?),
    };
    Ok(Arc::new(Store::open_with_key(&ctx.data_dir.join("zhiku.db"), key.as_ref())?))
}

/// The language model: `models.llm` if configured, else the registry's default, else the one
/// `zhiku setup` installs.
pub(crate) fn llm_path(ctx: &Ctx) -> Result<PathBuf> {
    if ctx.config.models.llm.is_empty() && ctx.data_dir.join("zhiku.db").is_file() {
        if let Some(model) = open_store(ctx)?.default_model()? {
            return Ok(PathBuf::from(model.path));
        }
    }
    Ok(ctx.config.llm_path(&ctx.data_dir))
}

pub(crate) fn engine(ctx: &Ctx) -> Result<Engine> {
    let store = open_store(ctx)?;
    let dir = ctx.config.embedding_dir(&ctx.data_dir);
    let embedder = BertEmbedder::load(&dir).with_context(|| format!("cannot load the embedding model from {}", dir.display()))?;
    Ok(with_embedding_models(ctx, Engine::new(&ctx.data_dir, store, Arc::new(embedder), ctx.config.rag())))
}

/// Makes the models other than MiniLM available to knowledge bases that choose them.
pub(crate) fn with_embedding_models(ctx: &Ctx, engine: Engine) -> Engine {
    let e5 = ctx.config.multilingual_embedding_path(&ctx.data_dir);
    let engine = match ctx.config.remote_embedding() {
        Some(endpoint) => engine.with_embedding_model(
            zhiku_rag::embedding::REMOTE,
            Box::new(move || {
                zhiku_models::RemoteEmbedder::connect(endpoint.clone())
                    .map(|m| Arc::new(m) as Arc<dyn zhiku_core::Embedder>)
                    .map_err(|e| e.to_string())
            }),
        ),
        None => engine,
    };
    engine.with_embedding_model(
        zhiku_rag::embedding::MULTILINGUAL_E5,
        Box::new(move || {
            zhiku_models::E5Embedder::load(&e5)
                .map(|m| Arc::new(m) as Arc<dyn zhiku_core::Embedder>)
                .map_err(|e| format!("{e} (`zhiku setup` installs it)"))
        }),
    )
}

fn parse(ctx: &Ctx, args: ParseArgs) -> Result<ExitCode> {
    use zhiku_ingest::container::{self, ArchiveLimits, Unpacked};
    let dir = ctx.config.embedding_dir(&ctx.data_dir);
    // The embedding model's own tokenizer, so chunks come out exactly as ingestion cuts them.
    let counter = WordPieceCounter::load(&dir).with_context(|| format!("cannot load the tokenizer from {}", dir.display()))?;
    let chunking = ctx.config.rag().chunk;
    let mut results = Vec::new();
    let mut failed = 0usize;
    for path in &args.files {
        let source = path.display().to_string();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let started = std::time::Instant::now();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                failed += 1;
                results.push(json!({ "source": source, "status": "failed", "reason": format!("cannot read: {e}") }));
                continue;
            }
        };
        if let Unpacked::Entries(entries) = container::unpack(&name, &bytes, &ArchiveLimits::default()) {
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            results.push(json!({ "source": source, "status": "container", "entries": names }));
            continue;
        }
        let keep_chunks = args.json || args.chunks;
        let section_bytes = ctx.config.rag().section_bytes;
        let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare_as_ingestion_does(&name, &bytes, &chunking, section_bytes, &counter, keep_chunks)
        }));
        let seconds = started.elapsed().as_secs_f64();
        match prepared {
            Ok(Ok((doc, chunk_count))) => {
                let pages = doc.chunks.iter().filter_map(|c| c.page).max();
                let embedded: Vec<&str> = doc.embedded.iter().map(|e| e.name.as_str()).collect();
                // The summary needs only the count: a huge file's chunks are not copied into JSON.
                let chunks: Vec<serde_json::Value> = if keep_chunks {
                    doc.chunks
                        .iter()
                        .map(|c| {
                            let mut v = serde_json::to_value(c).unwrap_or_default();
                            v["tokens"] = json!(zhiku_core::TokenCounter::count_tokens(&counter, &c.text));
                            v
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                results.push(json!({
                    "source": source, "status": "parsed", "format": doc.format, "language": doc.language,
                    "title": doc.title, "pages": pages, "seconds": seconds, "embedded": embedded,
                    "chunk_count": chunk_count, "chunks": chunks,
                }));
            }
            Ok(Err(reason)) => {
                failed += 1;
                results.push(json!({ "source": source, "status": "failed", "reason": reason }));
            }
            Err(_) => {
                failed += 1;
                results
                    .push(json!({ "source": source, "status": "failed", "reason": "the parser crashed on this file; please report it" }));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&json!({ "files": results }))?);
    } else {
        for r in &results {
            match r["status"].as_str() {
                Some("parsed") => {
                    let chunks = r["chunk_count"].as_u64().unwrap_or(0);
                    println!(
                        "{}: {} ({}), {chunks} chunks{}",
                        r["source"].as_str().unwrap_or(""),
                        r["format"].as_str().unwrap_or(""),
                        r["language"].as_str().unwrap_or(""),
                        r["pages"].as_u64().map(|p| format!(", {p} pages")).unwrap_or_default()
                    );
                    if args.chunks {
                        for c in r["chunks"].as_array().into_iter().flatten() {
                            let path: Vec<&str> = c["heading_path"].as_array().into_iter().flatten().filter_map(|h| h.as_str()).collect();
                            println!("--- #{} [{}] {} tokens", c["ordinal"], path.join(" > "), c["tokens"]);
                            println!("{}", c["text"].as_str().unwrap_or(""));
                        }
                    }
                }
                Some("container") => println!(
                    "{}: archive of {} files",
                    r["source"].as_str().unwrap_or(""),
                    r["entries"].as_array().map(Vec::len).unwrap_or(0)
                ),
                _ => println!("{}: failed: {}", r["source"].as_str().unwrap_or(""), r["reason"].as_str().unwrap_or("")),
            }
        }
    }
    Ok(if failed > 0 { ExitCode::from(EXIT_PARTIAL) } else { ExitCode::SUCCESS })
}

/// A file prepared as `ingest` prepares it (huge text files in sections, scanned PDFs through
/// OCR), with its chunk count; the chunks themselves only when `keep_chunks`, so that a summary
/// of a huge file does not hold them all.
fn prepare_as_ingestion_does(
    name: &str,
    bytes: &[u8],
    chunking: &zhiku_ingest::ChunkConfig,
    section_bytes: usize,
    counter: &WordPieceCounter,
    keep_chunks: bool,
) -> std::result::Result<(zhiku_ingest::PreparedDocument, usize), String> {
    match zhiku_ingest::prepare_in_sections(name, bytes, section_bytes, chunking, counter) {
        None => zhiku_rag::ocr::prepare_file(name, bytes, chunking, counter).map(|doc| {
            let n = doc.chunks.len();
            (doc, n)
        }),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(zhiku_ingest::Sectioned { mut first, rest })) => {
            let mut count = first.chunks.len();
            if !keep_chunks {
                first.chunks = Vec::new();
            }
            for section in rest {
                let chunks = section.map_err(|e| e.to_string())?;
                count += chunks.len();
                if keep_chunks {
                    first.chunks.extend(chunks);
                }
            }
            Ok((first, count))
        }
    }
}

fn caller(engine: &Engine, as_user: Option<&str>) -> Result<Caller> {
    match as_user {
        None => Ok(Caller::Admin),
        Some(name) => engine.caller_for(name).with_context(|| format!("invalid --as user '{name}'")),
    }
}

pub(crate) fn parse_acl(values: &[String]) -> Result<Vec<Principal>> {
    values.iter().map(|v| Principal::parse(v).with_context(|| "in --acl".to_string())).collect()
}

fn setup(ctx: &Ctx) -> Result<ExitCode> {
    ensure_data_dir(&ctx.data_dir)?;
    let models = ctx.data_dir.join("models");
    for package in registry::DEFAULT_MODELS {
        let spinner = ProgressBar::new_spinner().with_message(format!("{} ({})", package.name, package.pip_requirement));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let installed = package.install(&models).with_context(|| format!("installing {}", package.name))?;
        spinner.finish_and_clear();
        let verb = if installed { "installed" } else { "already installed" };
        eprintln!("{verb}: {} -> {}", package.name, package.destination(&models).display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The language model for the `llm` graph extractor, with the name the extraction cache keys it
/// by.
pub(crate) fn graph_model(ctx: &Ctx) -> Result<(Arc<dyn zhiku_models::ChatModel>, String)> {
    let path = llm_path(ctx)?;
    let llm = LlamaGenerator::load(&path)
        .with_context(|| format!("cannot load the language model {} for graph.extractor = \"llm\"", path.display()))?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let id = format!("{}:{size}", path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    Ok((Arc::new(llm), id))
}

fn ingest(ctx: &Ctx, args: IngestArgs) -> Result<ExitCode> {
    if args.queue {
        bail!("--queue hands files to `zhiku worker` processes through a shared database: pass --database-url or set ZHIKU_DATABASE_URL");
    }
    let acl = parse_acl(&args.acl)?;
    let mut engine = engine(ctx)?;
    if ctx.config.graph.enabled && ctx.config.graph.extractor == zhiku_rag::graph::ExtractorKind::Llm {
        let (model, id) = graph_model(ctx)?;
        engine = engine.with_graph_model(model, id);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files ({per_sec}, eta {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = IngestOptions { acl: (!acl.is_empty()).then_some(acl), sync: args.sync, embedding_model: args.embedding_model.clone() };
    let report = engine.ingest(&args.kb, &args.paths, &options, &mut |event| match event {
        IngestEvent::Started { files } => bar.set_length(files as u64),
        IngestEvent::Discovered { files } => bar.inc_length(files as u64),
        IngestEvent::FileDone { report } => {
            if let FileOutcome::Failed { reason } = &report.outcome {
                bar.suspend(|| eprintln!("failed: {}: {reason}", report.source));
            }
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    audit(engine.store(), "ingest", Some(&args.kb), zhiku_rag::audit::ingest_detail(&report))?;
    print_ingest_report(&args.kb, &report, args.json)
}

/// The `ingest` summary (text on stderr, or the JSON report on stdout) and its exit code.
pub(crate) fn print_ingest_report(kb: &str, report: &zhiku_rag::IngestReport, json: bool) -> Result<ExitCode> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&json!({
                "kb": kb,
                "ingested": report.ingested(),
                "unchanged": report.unchanged(),
                "duplicates": report.duplicates(),
                "removed": report.removed(),
                "failed": report.failed(),
                "chunks": report.chunks(),
                "pii_findings": report.pii(),
                "injection_findings": report.injection(),
                "files": report.files,
            }))?
        );
    } else {
        eprintln!(
            "{}: {} ingested ({} chunks), {} unchanged, {} duplicates, {} removed, {} failed",
            kb,
            report.ingested(),
            report.chunks(),
            report.unchanged(),
            report.duplicates(),
            report.removed(),
            report.failed()
        );
    }
    if report.failed() > 0 {
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(ExitCode::SUCCESS)
}

fn search(ctx: &Ctx, args: SearchArgs) -> Result<ExitCode> {
    let engine = engine(ctx)?;
    let caller = caller(&engine, args.as_user.as_deref())?;
    let mode = args.retrieval.unwrap_or(ctx.config.retrieval.mode);
    let hits = engine.search_in(&args.kb, &args.query, &caller, args.top_k, mode)?;
    let actor = question_actor(args.as_user.as_deref());
    zhiku_rag::audit::record_question(engine.store(), &actor, "search", &args.kb, &args.query, &zhiku_rag::audit::hit_refs(&hits), None)?;
    print_hits(&hits, args.json)
}

pub(crate) fn print_hits(hits: &[zhiku_rag::SearchHit], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(&json!({ "hits": hits }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if hits.is_empty() {
        println!("No results.");
    }
    let mut out = std::io::stdout().lock();
    for (i, h) in hits.iter().enumerate() {
        let mut section = if h.heading_path.is_empty() { String::new() } else { format!(" — {}", h.heading_path.join(" > ")) };
        if let Some(page) = h.page {
            section.push_str(&format!(" (page {page})"));
        }
        writeln!(out, "{}. {}{}  (chunk {}, score {:.4}, similarity {:.3})", i + 1, h.source, section, h.chunk_id, h.score, h.similarity)?;
        let preview: String = h.text.chars().take(300).collect();
        writeln!(out, "   {}\n", preview.replace('\n', " "))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line asking as `--as USER` is audited as that user, by the local operator.
pub(crate) fn question_actor(as_user: Option<&str>) -> String {
    match as_user {
        Some(user) => format!("{} user:{user}", governance::cli_actor()),
        None => governance::cli_actor(),
    }
}

/// The configured chat model: the remote one when `models.llm_url` is set, else the local GGUF.
pub(crate) fn configured_chat(ctx: &Ctx) -> Result<Box<dyn ChatModel>> {
    if let Some(endpoint) = ctx.config.remote_llm() {
        return Ok(Box::new(zhiku_models::RemoteChat::new(endpoint)));
    }
    let path = llm_path(ctx)?;
    Ok(Box::new(LlamaGenerator::load(&path).with_context(|| format!("cannot load the language model {}", path.display()))?))
}

/// A local GGUF model, with a registered adapter applied.
fn local_model(ctx: &Ctx, path: &Path, adapter: Option<&zhiku_store::AdapterRef>) -> Result<Box<dyn ChatModel>> {
    let mut llm = LlamaGenerator::load(path).with_context(|| format!("cannot load the language model {}", path.display()))?;
    if let Some(adapter) = adapter {
        llm = llm.with_lora(&crate::finetune::registered_adapter(ctx, &adapter.to_string(), path)?, 1.0)?;
    }
    Ok(Box::new(llm))
}

fn ask(ctx: &Ctx, args: AskArgs) -> Result<ExitCode> {
    let engine = engine(ctx)?;
    let caller = caller(&engine, args.as_user.as_deref())?;
    let adapter =
        zhiku_rag::finetune::chosen_adapter(engine.store(), args.adapter.as_deref(), Some(&args.kb))?.map_err(anyhow::Error::msg)?;
    let named = match &args.model {
        Some(name) => Some(name.clone()),
        None => engine.store().kb_model(&args.kb).ok().flatten(),
    };
    let registered = match &named {
        Some(name) => Some(
            engine
                .store()
                .registered_model(name)?
                .with_context(|| format!("no registered model '{name}'; `zhiku models list` shows them"))?,
        ),
        None => None,
    };
    let llm: Box<dyn ChatModel> = match (registered, ctx.config.remote_llm()) {
        (Some(zhiku_store::RegisteredModel { remote: Some(remote), name, .. }), _) => {
            if adapter.is_some() {
                bail!("adapters apply to a local model, and {name} is remote");
            }
            let endpoint = zhiku_server::remote_endpoint(&name, &remote, ctx.config.remote_settings()).map_err(anyhow::Error::msg)?;
            Box::new(zhiku_models::RemoteChat::new(zhiku_models::RemotePool::new(vec![endpoint])))
        }
        (Some(zhiku_store::RegisteredModel { path, .. }), _) => local_model(ctx, Path::new(&path), adapter.as_ref())?,
        (None, Some(_)) if adapter.is_some() => {
            bail!("adapters apply to the local model; this configuration generates remotely (models.llm_url)")
        }
        (None, Some(endpoint)) => Box::new(zhiku_models::RemoteChat::new(endpoint)),
        (None, None) => local_model(ctx, &llm_path(ctx)?, adapter.as_ref())?,
    };
    let llm = llm.as_ref();
    let stream = !args.json;
    let mode = args.retrieval.unwrap_or(ctx.config.retrieval.mode);
    let answer = engine.ask_with(&args.kb, &args.question, &caller, llm, &ctx.config.rag().generation, mode, &mut |piece| {
        if stream {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
        true
    })?;
    let cited: Vec<(&str, &str)> = answer.citations.iter().map(|c| (c.source.as_str(), c.chunk_id.as_str())).collect();
    let actor = question_actor(args.as_user.as_deref());
    zhiku_rag::audit::record_question(engine.store(), &actor, "ask", &args.kb, &args.question, &cited, Some(&answer.answer))?;
    print_answer(&answer, args.json)
}

pub(crate) fn print_answer(answer: &zhiku_rag::Answer, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    if !answer.generated && !answer.abstained {
        println!("\n(The generated text is not supported by the sources; quoting them instead.)\n{}", answer.answer);
    }
    if !answer.citations.is_empty() {
        println!("\nSources:");
        for c in &answer.citations {
            println!("[{}] {} (chunk {})", c.n, c.source, c.chunk_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn embed(ctx: &Ctx, args: EmbedArgs) -> Result<ExitCode> {
    if let Some(threads) = args.threads {
        // candle's CPU kernels size their pool from this variable; it must be set before the
        // first tensor operation.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let model = args.model.unwrap_or_else(|| PathBuf::from(zhiku_rag::embedding::MINILM));
    let path = match model.to_str() {
        Some(zhiku_rag::embedding::MINILM) => ctx.config.embedding_dir(&ctx.data_dir),
        Some(zhiku_rag::embedding::MULTILINGUAL_E5) => ctx.config.multilingual_embedding_path(&ctx.data_dir),
        _ => model.clone(),
    };
    let embedder: Box<dyn zhiku_core::Embedder> = if path.is_dir() && path.join("config.json").is_file() {
        Box::new(BertEmbedder::load(&path).with_context(|| format!("cannot load the embedding model from {}", path.display()))?)
    } else {
        Box::new(zhiku_models::E5Embedder::load(&path).with_context(|| format!("cannot load the embedding model {}", path.display()))?)
    };
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("cannot read {} as UTF-8 text", args.input.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let started = std::time::Instant::now();
    let vectors = if args.query { embedder.embed_queries(&lines)? } else { embedder.embed(&lines)? };
    let seconds = started.elapsed().as_secs_f64();
    let dim = embedder.dimension();
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    crate::npy::write_f32(&args.out, vectors.len(), dim, &flat)?;
    if args.json {
        println!("{}", json!({ "count": vectors.len(), "seconds": seconds, "dim": dim }));
    } else {
        eprintln!(
            "{} sentences in {seconds:.2}s ({:.1}/s), dimension {dim} -> {}",
            vectors.len(),
            vectors.len() as f64 / seconds.max(1e-9),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(ctx: &Ctx, args: GenerateArgs) -> Result<ExitCode> {
    let path = match args.model {
        Some(path) => path,
        None => llm_path(ctx)?,
    };
    let mut llm = LlamaGenerator::load(&path).with_context(|| format!("cannot load the language model {}", path.display()))?;
    let lora = match (&args.lora, &args.adapter) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(name)) => Some(crate::finetune::registered_adapter(ctx, name, &path)?),
        (None, None) => None,
    };
    if let Some(adapter) = &lora {
        llm = llm.with_lora(adapter, args.lora_scale)?;
    }
    let options = GenerationOptions {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        threads: args.threads,
        ..ctx.config.rag().generation
    };
    let stream = !args.json;
    let mut on_text = |piece: &str| {
        if stream {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
        true
    };
    let out = if args.raw {
        llm.complete(&args.prompt, &options, &mut on_text)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", args.prompt));
        llm.generate(&messages, &options, &mut on_text)?
    };
    if args.json {
        let rate = |tokens: usize, secs: f64| if secs > 0.0 { tokens as f64 / secs } else { 0.0 };
        println!(
            "{}",
            serde_json::to_string(&json!({
                "text": out.text,
                "prompt_tokens": out.prompt_tokens,
                "generated_tokens": out.generated_tokens,
                "prompt_tps": rate(out.prompt_tokens, out.prompt_seconds),
                "decode_tps": rate(out.generated_tokens, out.decode_seconds),
            }))?
        );
    } else {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn kb(ctx: &Ctx, cmd: KbCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    match cmd {
        KbCommand::List => {
            for name in store.list_kbs()? {
                let docs = store.documents(&name)?;
                let chunks: usize = docs.iter().map(|d| d.chunks).sum();
                let acl = store.kb_default_acl(&name)?;
                let acl = if acl.is_empty() {
                    "administrators only".to_string()
                } else {
                    store.kb_roles(&name)?.iter().map(|(p, r)| format!("{p} ({r})")).collect::<Vec<_>>().join(", ")
                };
                let pii = store.kb_pii_policy(&name)?;
                let duplicates = store.kb_duplicate_policy(&name)?;
                println!(
                    "{name}\t{} documents\t{chunks} chunks\treaders: {acl}\tPII: {}\tduplicates: {}",
                    docs.len(),
                    pii.as_str(),
                    duplicates.as_str()
                );
            }
        }
        KbCommand::Create {
            name,
            acl,
            log_questions,
            mask_answers,
            answer_cache,
            pii,
            duplicates,
            vector_index,
            embedding_model,
            adapter,
            model,
        } => {
            let acl = parse_acl(&acl)?;
            let engine = engine(ctx)?;
            let created = engine.create_kb(&name, &acl, embedding_model.as_deref())?;
            if !created && !acl.is_empty() {
                engine.set_kb_viewers(&name, &acl)?;
            }
            if let (false, Some(model)) = (created, &embedding_model) {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} chunks re-embedded (eta {eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                let moved = engine.set_embedding_model(&name, model, &mut |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })?;
                bar.finish_and_clear();
                if moved > 0 {
                    eprintln!("{moved} chunks re-embedded with {model}");
                }
            }
            if let Some(keep) = log_questions {
                store.set_kb_logs_questions(&name, keep)?;
            }
            if let Some(mask) = mask_answers {
                store.set_kb_masks_answers(&name, mask)?;
            }
            if let Some(cache) = answer_cache {
                store.set_kb_caches_answers(&name, cache)?;
            }
            if let Some(policy) = duplicates {
                store.set_kb_duplicate_policy(&name, policy)?;
            }
            if let Some(policy) = pii {
                store.set_kb_pii_policy(&name, policy)?;
            }
            if let Some(kind) = vector_index {
                store.set_kb_vector_index(&name, kind.as_str())?;
            }
            if let Some(adapter) = &adapter {
                let adapter = match adapter.as_str() {
                    "none" => None,
                    named => Some(named.parse::<zhiku_store::AdapterRef>().map_err(anyhow::Error::msg)?),
                };
                store.set_kb_adapter(&name, adapter.as_ref())?;
            }
            if let Some(model) = &model {
                store.set_kb_model(&name, Some(model.as_str()).filter(|m| *m != "none"))?;
            }
            let settings = json!({
                "viewers": (!acl.is_empty()).then_some(&acl), "log_questions": log_questions, "mask_answers": mask_answers,
                "answer_cache": answer_cache, "pii": pii.map(|p| p.as_str()),
                "duplicates": duplicates.map(|d| d.as_str()), "vector_index": vector_index.map(|v| v.as_str()),
                "adapter": adapter, "embedding_model": embedding_model, "model": model,
            });
            audit(&store, if created { "kb.create" } else { "kb.update" }, Some(&name), settings)?;
            eprintln!("knowledge base {name} {}", if created { "created" } else { "updated" });
        }
        KbCommand::Grant { name, principal, role } => return governance::kb_grant(ctx, &name, &principal, Some(role)),
        KbCommand::Revoke { name, principal } => return governance::kb_grant(ctx, &name, &principal, None),
        KbCommand::Roles { name } => return governance::kb_roles(ctx, &name),
        KbCommand::Acl { name, source, acl, inherit } => return governance::document_acl(ctx, &name, &source, &acl, inherit),
        KbCommand::Docs { name } => {
            if !store.kb_exists(&name)? {
                bail!("knowledge base '{name}' does not exist");
            }
            for d in store.documents(&name)? {
                let acl: Vec<&str> = d.acl.iter().map(|p| p.as_str()).collect();
                println!(
                    "{}\t{} chunks\t{}\t{}\t{}",
                    d.source,
                    d.chunks,
                    d.language,
                    if d.partial { "incomplete" } else { &d.content_hash[..12.min(d.content_hash.len())] },
                    acl.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `zhiku serve`; with `cluster`, a replica over a shared database.
pub(crate) fn serve(ctx: &Ctx, args: ServeArgs, cluster: Option<Arc<zhiku_rag::cluster::ClusterEngine>>) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    store.checkpoint_in_background(std::time::Duration::from_millis(500), 64 << 20)?;
    let dir = ctx.config.embedding_dir(&ctx.data_dir);
    let embedder: Arc<dyn zhiku_core::Embedder> =
        Arc::new(BertEmbedder::load(&dir).with_context(|| format!("cannot load the embedding model from {}", dir.display()))?);
    let mut engine = with_embedding_models(ctx, Engine::new(&ctx.data_dir, store.clone(), embedder.clone(), ctx.config.rag()));
    let llm_path = llm_path(ctx)?;
    let chat = if let Some(endpoint) = ctx.config.remote_llm() {
        let id = if endpoint.model().is_empty() { "remote".to_string() } else { endpoint.model().to_string() };
        Some(zhiku_server::DefaultModel { id, model: Arc::new(zhiku_models::RemoteChat::new(endpoint)), path: None })
    } else if llm_path.is_file() {
        let llm = LlamaGenerator::load(&llm_path).with_context(|| format!("cannot load the language model {}", llm_path.display()))?;
        let id = llm_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "local".into());
        Some(zhiku_server::DefaultModel { id, model: Arc::new(llm), path: Some(llm_path.clone()) })
    } else {
        tracing::warn!(path = %llm_path.display(), "no language model there: chat completions answer 503 until `zhiku setup` installs one");
        None
    };
    if let (Some(chat), zhiku_rag::graph::ExtractorKind::Llm) = (&chat, ctx.config.graph.extractor) {
        let size = std::fs::metadata(&llm_path).map(|m| m.len()).unwrap_or(0);
        let name = llm_path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        engine = engine.with_graph_model(chat.model.clone(), format!("{name}:{size}"));
    }
    let models = zhiku_server::ChatModels::new(chat, ctx.config.models_memory_budget(), ctx.config.remote_settings());
    let engine = Arc::new(engine);
    zhiku_rag::release_freed_memory();
    let embedding_model = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "embedding".into());
    let server = &ctx.config.server;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        _ if !server.tls_cert.is_empty() => Some((PathBuf::from(&server.tls_cert), PathBuf::from(&server.tls_key))),
        _ => None,
    };
    let state = Arc::new(zhiku_server::AppState {
        engine,
        store,
        embedder,
        embedding_model,
        models,
        generation_slots: Arc::new(tokio::sync::Semaphore::new(server.generation_slots)),
        compute_slots: Arc::new(tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map_or(2, |n| n.get()))),
        search_slots: Arc::new(tokio::sync::Semaphore::new(32 * std::thread::available_parallelism().map_or(2, |n| n.get()))),
        data_dir: ctx.data_dir.clone(),
        jobs: Default::default(),
        cors_origins: server.cors_origins.clone(),
        security: zhiku_server::Security {
            proxy: zhiku_server::TrustedProxy {
                user_header: server.trusted_proxy_user_header.clone(),
                groups_header: server.trusted_proxy_groups_header.clone(),
                proxies: server.trusted_proxies.iter().map(|p| p.parse()).collect::<Result<_, _>>().context("server.trusted_proxies")?,
            },
            // Behind TLS the session cookie never travels in clear.
            ldap: ctx.config.ldap.clone(),
            metrics_public: server.metrics_public,
            ..zhiku_server::Security::new(server.session_hours, server.secure_cookies || tls.is_some(), server.rate_limit_per_minute)
        },
        metrics: Default::default(),
        cluster,
    });
    let bind = match args.bind {
        Some(addr) => addr,
        None => server.bind.parse().context("server.bind")?,
    };
    let options = zhiku_server::ServerOptions { bind, max_body_bytes: (server.max_body_mb * (1 << 20) as f64) as usize, tls };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(zhiku_server::serve(state, options)).with_context(|| format!("cannot serve on {bind}"))?;
    Ok(ExitCode::SUCCESS)
}
