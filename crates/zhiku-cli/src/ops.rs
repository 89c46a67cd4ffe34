//! Backup and restore of a data directory. A backup is one ZIP file: a consistent snapshot of
//! the store (documents, chunks with their vectors, users, groups, roles, keys, the audit chain;
//! taken with SQLite's `VACUUM INTO` while a server keeps serving), the uploaded originals, the
//! configuration file, and a manifest. The derived indexes are not in it: they are rebuilt from
//! the store on first use, which is what makes the snapshot consistent without stopping anyone.
//! Models are not in it either (`zhiku setup` installs them again).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;
use zip::write::SimpleFileOptions;

use crate::cli::ModelsCommand;
use crate::commands::{open_store, Ctx};
use crate::governance::audit;

const MANIFEST: &str = "manifest.json";
const STORE: &str = "zhiku.db";
const CONFIG: &str = "zhiku.toml";
const UPLOADS: &str = "uploads";
/// Bumped when the backup's layout changes; restore refuses a newer one.
const BACKUP_FORMAT: u64 = 1;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else if path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".part")) {
            out.push(path);
        }
    }
    Ok(())
}

pub fn backup(ctx: &Ctx, out: &Path, as_json: bool) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let work = tempfile::tempdir_in(parent).with_context(|| format!("cannot write in {}", parent.display()))?;
    let snapshot = work.path().join(STORE);
    store.snapshot(&snapshot).context("cannot take a snapshot of the store")?;
    let (kbs, documents, chunks, audit_entries) = store.counts()?;
    let head = store.verify_audit()?.map(|(_, head)| head).unwrap_or_default();
    let mut uploads = Vec::new();
    files_under(&ctx.data_dir.join(UPLOADS), &mut uploads)?;

    let partial = work.path().join("backup.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    let manifest = json!({
        "format": BACKUP_FORMAT, "zhiku": env!("CARGO_PKG_VERSION"),
        "created_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "knowledge_bases": kbs, "documents": documents, "chunks": chunks, "audit_entries": audit_entries, "audit_head": head,
        "uploads": uploads.len(),
    });
    zip.start_file(MANIFEST, options)?;
    zip.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    let mut add = |name: String, path: &Path| -> Result<()> {
        zip.start_file(name, options)?;
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        std::io::copy(&mut file, &mut zip)?;
        Ok(())
    };
    add(STORE.into(), &snapshot)?;
    let config = ctx.data_dir.join(CONFIG);
    if config.is_file() {
        add(CONFIG.into(), &config)?;
    }
    for path in &uploads {
        let relative = path.strip_prefix(&ctx.data_dir).unwrap_or(path);
        add(relative.to_string_lossy().replace('\\', "/"), path)?;
    }
    zip.finish()?.sync_all()?;
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    audit(&store, "backup", None, json!({ "file": out.display().to_string(), "documents": documents, "audit_head": head }))?;
    if as_json {
        println!("{manifest}");
    } else {
        eprintln!(
            "backed up {kbs} knowledge bases, {documents} documents, {chunks} chunks, {audit_entries} audit entries to {}",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_remote(m: &zhiku_store::RegisteredModel) {
    if let Some(r) = &m.remote {
        let key = r.api_key_env.as_deref().map(|v| format!("\tkey from ${v}")).unwrap_or_default();
        println!("{}\tremote\t{} at {}{key}{}", m.name, r.model, r.url, if m.default { "\t(default)" } else { "" });
    }
}

fn print_model(path: &Path, info: &zhiku_models::describe::ModelInfo, role: &str) {
    let parameters = if info.parameters >= 1_000_000_000 {
        format!("{:.1}B", info.parameters as f64 / 1e9)
    } else {
        format!("{:.0}M", info.parameters as f64 / 1e6)
    };
    println!(
        "{}\t{}\t{} {}\t{parameters} parameters\tcontext {}\t{:.0} MiB\t{}{role}",
        path.display(),
        info.format,
        info.architecture,
        info.quantization.as_deref().unwrap_or("-"),
        info.context_length.map_or("-".to_string(), |c| c.to_string()),
        info.size_bytes as f64 / (1 << 20) as f64,
        &info.sha256[..12],
    );
}

pub fn models(ctx: &Ctx, cmd: ModelsCommand) -> Result<ExitCode> {
    use zhiku_models::describe::describe;
    match cmd {
        ModelsCommand::Info { path, json } => {
            let registered = match path.to_str() {
                Some(name) if !path.exists() && zhiku_core::is_valid_name(name) && ctx.data_dir.join(STORE).is_file() => {
                    open_store(ctx)?.registered_model(name)?
                }
                _ => None,
            };
            match registered {
                Some(m) if m.remote.is_some() => {
                    if json {
                        println!("{}", serde_json::to_string(&m)?);
                    } else {
                        print_remote(&m);
                    }
                }
                Some(m) => {
                    let info = describe(Path::new(&m.path))?;
                    if json {
                        let mut value = serde_json::to_value(&info)?;
                        value["name"] = json!(m.name);
                        value["path"] = json!(m.path);
                        value["default"] = json!(m.default);
                        println!("{value}");
                    } else {
                        print_model(Path::new(&m.path), &info, &format!("\t({})", m.name));
                    }
                }
                None => {
                    let info = describe(&path)?;
                    if json {
                        println!("{}", serde_json::to_string(&info)?);
                    } else {
                        print_model(&path, &info, "");
                    }
                }
            }
        }
        ModelsCommand::Add { name, path, url, remote_model, api_key_env, default, json } => {
            let store = open_store(ctx)?;
            let model = match (path, url) {
                (_, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!("--url {url}: give the server's API as http(s)://HOST:PORT/v1");
                    }
                    zhiku_store::RegisteredModel {
                        name: name.clone(),
                        path: String::new(),
                        architecture: "remote".into(),
                        quantization: None,
                        parameters: 0,
                        context_length: None,
                        size_bytes: 0,
                        sha256: String::new(),
                        added_at: 0,
                        default,
                        remote: Some(zhiku_store::RemoteModel {
                            url: url.trim_end_matches('/').to_string(),
                            model: remote_model.unwrap_or_else(|| name.clone()),
                            api_key_env,
                        }),
                    }
                }
                (Some(path), None) => {
                    let info = describe(&path)?;
                    if info.format != "gguf" {
                        bail!(
                            "{} is an embedding model folder: the registry holds language models (GGUF); set models.embedding for embeddings",
                            path.display()
                        );
                    }
                    let path = path.canonicalize().with_context(|| format!("cannot resolve {}", path.display()))?;
                    zhiku_store::RegisteredModel {
                        name: name.clone(),
                        path: path.display().to_string(),
                        architecture: info.architecture.clone(),
                        quantization: info.quantization.clone(),
                        parameters: info.parameters,
                        context_length: info.context_length,
                        size_bytes: info.size_bytes,
                        sha256: info.sha256.clone(),
                        added_at: 0,
                        default,
                        remote: None,
                    }
                }
                (None, None) => bail!("give the model's GGUF file, or --url for a remote one"),
            };
            store.add_model(&model)?;
            if default {
                store.set_default_model(&name)?;
            }
            let detail = match &model.remote {
                Some(r) => json!({ "name": name, "url": r.url, "remote_model": r.model, "default": default }),
                None => json!({ "name": name, "sha256": model.sha256, "default": default }),
            };
            audit(&store, "model.add", None, detail)?;
            if json {
                println!("{}", serde_json::to_string(&store.registered_model(&name)?)?);
            } else if let Some(r) = &model.remote {
                eprintln!("model {name} registered: {} at {}", r.model, r.url);
            } else {
                eprintln!(
                    "model {name} registered: {} {} ({})",
                    model.architecture,
                    model.quantization.as_deref().unwrap_or("-"),
                    model.path
                );
            }
        }
        ModelsCommand::Default { name } => {
            let store = open_store(ctx)?;
            store.set_default_model(&name)?;
            audit(&store, "model.default", None, json!({ "name": name }))?;
            if !ctx.config.models.llm.is_empty() {
                eprintln!("note: models.llm is configured ({}), and it takes precedence", ctx.config.models.llm);
            }
        }
        ModelsCommand::Rm { name, force } => {
            let store = open_store(ctx)?;
            if !store.remove_model(&name, force)? {
                bail!("no registered model '{name}'; `zhiku models list` shows them");
            }
            audit(&store, "model.remove", None, json!({ "name": name, "forced": force }))?;
        }
        ModelsCommand::List { json } => {
            let llm = crate::commands::llm_path(ctx)?;
            let embedding = ctx.config.embedding_dir(&ctx.data_dir);
            let multilingual = ctx.config.multilingual_embedding_path(&ctx.data_dir);
            let mut paths = vec![llm.clone(), embedding.clone(), multilingual.clone()];
            if let Ok(entries) = std::fs::read_dir(ctx.data_dir.join("models")) {
                let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                found.sort();
                paths.extend(found.into_iter().filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "gguf" || e == "bin")));
            }
            let registered = if ctx.data_dir.join(STORE).is_file() { open_store(ctx)?.models()? } else { Vec::new() };
            paths.extend(registered.iter().filter(|m| m.remote.is_none()).map(|m| PathBuf::from(&m.path)));
            paths.dedup();
            let mut listed = Vec::new();
            for path in paths.iter().filter(|p| p.exists()) {
                if listed.iter().any(|(p, _): &(PathBuf, serde_json::Value)| p == path) {
                    continue;
                }
                let role = if *path == llm {
                    "language model"
                } else if *path == embedding {
                    "embedding model"
                } else if *path == multilingual {
                    "multilingual embedding model"
                } else {
                    "installed"
                };
                match describe(path) {
                    Ok(info) => {
                        if !json {
                            let names: Vec<&str> =
                                registered.iter().filter(|m| Path::new(&m.path) == path.as_path()).map(|m| m.name.as_str()).collect();
                            let registered_as =
                                if names.is_empty() { String::new() } else { format!("; registered as {}", names.join(", ")) };
                            print_model(path, &info, &format!("\t({role}{registered_as})"));
                        }
                        let mut value = serde_json::to_value(&info)?;
                        value["path"] = json!(path.display().to_string());
                        value["role"] = json!(role);
                        if let Some(m) = registered.iter().find(|m| Path::new(&m.path) == path.as_path()) {
                            value["name"] = json!(m.name);
                            value["default"] = json!(m.default);
                            if m.sha256 != info.sha256 {
                                eprintln!("warning: {} changed since it was registered as {} (sha256 differs)", path.display(), m.name);
                            }
                        }
                        listed.push((path.clone(), value));
                    }
                    Err(e) => eprintln!("{}: {e}", path.display()),
                }
            }
            for m in registered.iter().filter(|m| m.remote.is_some()) {
                if !json {
                    print_remote(m);
                }
                let mut value = serde_json::to_value(m)?;
                value["role"] = json!("remote");
                listed.push((PathBuf::new(), value));
            }
            if json {
                println!("{}", json!({ "models": listed.into_iter().map(|(_, v)| v).collect::<Vec<_>>() }));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an entry of a backup goes, if it is one a backup holds: never outside the data dir.
fn destination(data_dir: &Path, name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let known = name == STORE || name == CONFIG || name == MANIFEST || name.starts_with(&format!("{UPLOADS}/"));
    known.then(|| data_dir.join(path))
}

pub fn restore(ctx: &Ctx, from: &Path, as_json: bool) -> Result<ExitCode> {
    let data_dir = &ctx.data_dir;
    if std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} is not empty: restore into a new or empty data directory (--data-dir)", data_dir.display());
    }
    let file = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut archive = zip::ZipArchive::new(file).with_context(|| format!("{} is not a zhiku backup (not a ZIP file)", from.display()))?;
    let manifest: serde_json::Value = {
        let mut text = String::new();
        archive
            .by_name(MANIFEST)
            .with_context(|| format!("{} is not a zhiku backup (no {MANIFEST})", from.display()))?
            .read_to_string(&mut text)?;
        serde_json::from_str(&text).with_context(|| format!("{MANIFEST} in {} is not JSON", from.display()))?
    };
    let format = manifest["format"].as_u64().unwrap_or(0);
    if format == 0 || format > BACKUP_FORMAT {
        bail!(
            "{} was written in backup format {format}; this zhiku reads up to {BACKUP_FORMAT}: restore it with a newer zhiku",
            from.display()
        );
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| anyhow::anyhow!("{}: an entry's name: {e}", from.display()))?.to_string();
        let Some(dest) = destination(data_dir, &name) else {
            bail!("{} holds an entry '{name}' no backup has: refusing it", from.display())
        };
        if name == MANIFEST {
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
    }
    // The restored store must open (with the configured key, if it was encrypted) and its audit
    // chain must still hold and end where the backup said.
    let store = open_store(ctx).context("the restored store does not open")?;
    let (entries, head) = match store.verify_audit()? {
        Ok(verified) => verified,
        Err(broken) => bail!("the restored audit chain breaks at entry {}: {}", broken.seq, broken.reason),
    };
    if manifest["audit_head"].as_str().is_some_and(|h| h != head) {
        bail!("the restored audit chain ends at {head}, the backup recorded {}", manifest["audit_head"]);
    }
    audit(&store, "restore", None, json!({ "file": from.display().to_string(), "audit_entries": entries }))?;
    let (kbs, documents, chunks, _) = store.counts()?;
    if as_json {
        println!("{}", json!({ "knowledge_bases": kbs, "documents": documents, "chunks": chunks, "audit_entries": entries }));
    } else {
        eprintln!(
            "restored {kbs} knowledge bases, {documents} documents, {chunks} chunks into {}; indexes are rebuilt on first use",
            data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a JSONL question file, naming the line of any record that does not parse.
fn read_questions<T: serde::de::DeserializeOwned>(qa: &Path, shape: &str) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(qa).with_context(|| format!("cannot read {}", qa.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).with_context(|| format!("{}, line {}: expected {shape}", qa.display(), i + 1))?);
    }
    if out.is_empty() {
        bail!("{} holds no questions", qa.display());
    }
    Ok(out)
}

/// `zhiku eval retrieval` and `zhiku eval answers`.
pub fn eval(ctx: &Ctx, command: crate::cli::EvalCommand) -> Result<ExitCode> {
    let (kb, qa, as_user, json) = match &command {
        crate::cli::EvalCommand::Retrieval { kb, qa, as_user, json } | crate::cli::EvalCommand::Answers { kb, qa, as_user, json } => {
            (kb.clone(), qa.clone(), as_user.clone(), *json)
        }
    };
    let engine = crate::commands::engine(ctx)?;
    let caller = match as_user.as_deref() {
        None => zhiku_core::Caller::Admin,
        Some(user) => engine.caller_for(user)?,
    };
    if let crate::cli::EvalCommand::Answers { .. } = command {
        return eval_answers(ctx, &engine, &kb, &qa, &caller, json);
    }
    let judged: Vec<zhiku_rag::eval::Judged> = read_questions(&qa, r#"{"query": "...", "relevant": ["source", ...]}"#)?;
    if let Some(i) = judged.iter().position(|q| q.relevant.is_empty()) {
        bail!("{}, question {}: \"relevant\" names no document", qa.display(), i + 1);
    }
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(judged.len() as u64) };
    let report = engine.evaluate_retrieval(&kb, &judged, &caller, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} questions\n\n| retriever | recall@1 | recall@5 | recall@10 | MRR@10 | nDCG@10 |\n|---|---|---|---|---|---|",
            report.queries
        );
        for (retriever, s) in &report.retrievers {
            let name = serde_json::to_value(retriever)?.as_str().unwrap_or_default().to_string();
            println!("| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |", s.recall_1, s.recall_5, s.recall_10, s.mrr_10, s.ndcg_10);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_answers(ctx: &Ctx, engine: &zhiku_rag::Engine, kb: &str, qa: &Path, caller: &zhiku_core::Caller, json: bool) -> Result<ExitCode> {
    use zhiku_rag::eval::{answer_report, score_answer, JudgedAnswer};
    let questions: Vec<JudgedAnswer> =
        read_questions(qa, r#"{"query": "...", "expected"?: [...], "relevant"?: [...], "answerable"?: bool}"#)?;
    let model = crate::commands::configured_chat(ctx)?;
    let options = ctx.config.rag().generation;
    let mode = ctx.config.retrieval.mode;
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(questions.len() as u64) };
    let mut scored = Vec::with_capacity(questions.len());
    for question in &questions {
        let answer = engine.ask_with(kb, &question.query, caller, model.as_ref(), &options, mode, &mut |_| true)?;
        let cited: Vec<(usize, String)> = answer.citations.iter().map(|c| (c.n, c.source.clone())).collect();
        scored.push(score_answer(question, &answer.answer, answer.abstained, &cited));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = answer_report(&questions, &scored);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} questions: wrongly abstained {:.2}, wrongly answered {:.2}, citations valid {:.2}, expected terms {:.2}, cites a relevant document {:.2}",
            report.queries, report.wrongly_abstained, report.wrongly_answered, report.citations_valid, report.expected_terms, report.cites_relevant
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `zhiku quantize`: llama.cpp's quantizer on a GGUF file.
pub fn quantize(input: &Path, out: &Path, kind: &str, allow_requantize: bool, threads: Option<usize>, json: bool) -> Result<ExitCode> {
    let kind: zhiku_models::QuantType = kind.parse().map_err(anyhow::Error::msg)?;
    if input == out {
        bail!("--out must differ from --input: the input is read while the output is written");
    }
    let started = std::time::Instant::now();
    zhiku_models::quantize(input, out, kind, threads, allow_requantize)?;
    let seconds = started.elapsed().as_secs_f64();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if json {
        println!("{}", json!({ "input_bytes": size(input), "output_bytes": size(out), "seconds": seconds }));
    } else {
        println!(
            "{} ({:.1} MiB) → {} ({:.1} MiB) in {seconds:.1}s",
            input.display(),
            size(input) as f64 / 1048576.0,
            out.display(),
            size(out) as f64 / 1048576.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_entries_inside_the_data_dir_are_restored() {
        let dir = Path::new("/data");
        assert_eq!(destination(dir, "zhiku.db"), Some(dir.join("zhiku.db")));
        assert_eq!(destination(dir, "uploads/hr/leave.md"), Some(dir.join("uploads/hr/leave.md")));
        for bad in ["../etc/passwd", "/etc/passwd", "uploads/../../x", "models/evil.gguf", "kb/hr/vectors.flat", "./zhiku.db"] {
            assert_eq!(destination(dir, bad), None, "{bad}");
        }
    }
}
