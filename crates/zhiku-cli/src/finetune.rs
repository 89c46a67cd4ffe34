//! `zhiku finetune`: LoRA adapters trained here on the CPU.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use zhiku_models::LlamaGenerator;
use zhiku_rag::finetune::{self as tuning, DatasetOptions, GenerateOptions, PairWriter};
use zhiku_store::PairStatus;
use zhiku_tune::dataset::Format;
use zhiku_tune::{data, TrainConfig};

use crate::cli::{FinetuneCommand, FinetuneDatasetArgs, FinetuneTrainArgs, ReviewCommand};
use crate::commands::{llm_path, open_store, question_actor, Ctx};
use crate::governance::audit;
use crate::graph::caller;

pub fn finetune(ctx: &Ctx, command: FinetuneCommand) -> Result<ExitCode> {
    match command {
        FinetuneCommand::Train(args) => train(ctx, *args),
        FinetuneCommand::Dataset(args) => dataset(ctx, *args),
        FinetuneCommand::Review(command) => review(ctx, command),
        FinetuneCommand::Register { name, lora, base, kb, json } => {
            let base = resolve_model(ctx, base.as_deref())?;
            let adapter = zhiku_tune::peft::read_gguf_adapter(&lora)?;
            if let Err(e) = LlamaGenerator::load(&base).and_then(|m| m.with_lora(&lora, 1.0)) {
                return Err(anyhow::Error::new(e).context(format!("{} does not fit {}", lora.display(), base.display())));
            }
            let registered = register(ctx, &name, &lora, &base, kb.as_deref(), adapter.rank() as u32, adapter.alpha as f64, None)?;
            print_registered(&registered, json)?;
            Ok(ExitCode::SUCCESS)
        }
        FinetuneCommand::Adapters { json } => {
            let adapters = open_store(ctx)?.adapters()?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "adapters": adapters }))?);
            } else {
                for a in &adapters {
                    let losses = match (a.eval_loss_before, a.eval_loss_after) {
                        (Some(b), Some(f)) => format!(", eval loss {b:.3} → {f:.3}"),
                        _ => String::new(),
                    };
                    println!(
                        "{}@{}  rank {}{}{}  {}  (base {})",
                        a.name,
                        a.version,
                        a.rank,
                        a.kb.as_deref().map(|k| format!(", kb {k}")).unwrap_or_default(),
                        losses,
                        a.path,
                        a.base_path
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FinetuneCommand::Export { base, lora, peft } => {
            let base = resolve_model(ctx, base.as_deref())?;
            let config = zhiku_tune::LlamaConfig::read(&base)?;
            let adapter = zhiku_tune::peft::read_gguf_adapter(&lora)?;
            let name = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            zhiku_tune::peft::export_peft(&adapter, &config, &name, &peft)?;
            println!("{} adapted weights (rank {}) → {}", adapter.pairs.len(), adapter.rank(), peft.display());
            Ok(ExitCode::SUCCESS)
        }
        FinetuneCommand::Import { base, peft, out } => {
            let base = resolve_model(ctx, base.as_deref())?;
            let config = zhiku_tune::LlamaConfig::read(&base)?;
            let adapter = zhiku_tune::peft::import_peft(&peft, &config)?;
            adapter.write_gguf(&out)?;
            // llama.cpp has the last word on whether the file fits the model.
            if let Err(e) = LlamaGenerator::load(&base).and_then(|m| m.with_lora(&out, 1.0)) {
                let _ = std::fs::remove_file(&out);
                return Err(anyhow::Error::new(e).context("the converted adapter does not load"));
            }
            println!(
                "{} adapted weights (rank {}) → {} (apply with `zhiku generate --lora {}`)",
                adapter.pairs.len(),
                adapter.rank(),
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `FILE.jsonl` → `FILE.validation.jsonl`.
fn validation_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
    out.with_file_name(format!("{stem}.validation.jsonl"))
}

fn write_jsonl(path: &Path, records: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record)?);
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn dataset(ctx: &Ctx, args: FinetuneDatasetArgs) -> Result<ExitCode> {
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    if !(0.0..1.0).contains(&args.validation_fraction) {
        bail!("--validation-fraction must be at least 0 and below 1");
    }
    let store = open_store(ctx)?;
    let caller = caller(&store, args.as_user.as_deref())?;
    let mut generated = None;
    let data = if format == Format::Dpo {
        tuning::dpo_dataset(&store, &args.kb, &caller, args.validation_fraction)?
    } else {
        if !args.no_generate {
            // A bigger remote model (models.llm_url) writes better pairs than a small local one.
            let (model, id): (Box<dyn zhiku_models::ChatModel>, String) = match (&args.model, ctx.config.remote_llm()) {
                (None, Some(endpoint)) => {
                    let id = format!("remote:{}", endpoint.model());
                    (Box::new(zhiku_models::RemoteChat::new(endpoint)), id)
                }
                _ => {
                    let path = resolve_model(ctx, args.model.as_deref())?;
                    let model = LlamaGenerator::load(&path).with_context(|| format!("cannot load the model {}", path.display()))?;
                    (Box::new(model), path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()))
                }
            };
            let writer = PairWriter { model: model.as_ref(), id };
            let options =
                GenerateOptions { max_chunks: args.max_chunks, min_chunk_chars: args.min_chunk_chars, ..GenerateOptions::default() };
            let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} chunks (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let report = tuning::generate_pairs(&store, &args.kb, &caller, &writer, &options, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            generated = Some(report);
        }
        let options = DatasetOptions {
            format,
            accepted_only: args.accepted_only,
            validation_fraction: args.validation_fraction,
            system: args.system,
        };
        tuning::sft_dataset(&store, &args.kb, &caller, &options)?
    };
    let validation_out = validation_path(&args.out);
    write_jsonl(&args.out, &data.train)?;
    write_jsonl(&validation_out, &data.validation)?;
    let summary = json!({
        "format": args.format,
        "train": data.train.len(),
        "validation": data.validation.len(),
        "train_file": args.out,
        "validation_file": validation_out,
        "generated": generated,
    });
    audit(
        &store,
        "finetune.dataset",
        Some(&args.kb),
        json!({"as": args.as_user, "format": args.format, "train": data.train.len(), "validation": data.validation.len()}),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        if let Some(report) = &generated {
            println!(
                "read {} new chunks: {} pairs queued for review, {} rejected {:?}",
                report.read,
                report.kept,
                report.rejected.values().sum::<usize>(),
                report.rejected
            );
        }
        println!(
            "{} training records → {}\n{} validation records → {}",
            data.train.len(),
            args.out.display(),
            data.validation.len(),
            validation_out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn review(ctx: &Ctx, command: ReviewCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    let decide = |kb: &str,
                  ids: &[i64],
                  as_user: Option<&str>,
                  status: PairStatus,
                  question: Option<&str>,
                  answer: Option<&str>|
     -> Result<ExitCode> {
        let caller = caller(&store, as_user)?;
        let reviewer = question_actor(as_user);
        let mut missing = Vec::new();
        for &id in ids {
            if tuning::review(&store, kb, &caller, tuning::Decision { pair: id, status, question, answer }, &reviewer)? {
                audit(
                    &store,
                    "finetune.review",
                    Some(kb),
                    json!({"pair": id, "status": status, "edited": question.is_some() || answer.is_some(), "as": as_user}),
                )?;
            } else {
                missing.push(id);
            }
        }
        if !missing.is_empty() {
            bail!("no pair {missing:?} in knowledge base '{kb}' that you may see (see `zhiku finetune review list --kb {kb}`)");
        }
        println!("{} pair(s) {}", ids.len(), status.as_str());
        Ok(ExitCode::SUCCESS)
    };
    match command {
        ReviewCommand::List { kb, status, as_user, json } => {
            let status = status.map(|s| s.parse::<PairStatus>()).transpose().map_err(anyhow::Error::msg)?;
            let caller = caller(&store, as_user.as_deref())?;
            let pairs = tuning::review_queue(&store, &kb, &caller, status)?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "pairs": pairs }))?);
            } else {
                for p in &pairs {
                    println!(
                        "#{} [{}{}] {}\n  Q: {}\n  A: {}",
                        p.id,
                        p.status.as_str(),
                        if p.edited { ", edited" } else { "" },
                        p.source,
                        p.question,
                        p.answer
                    );
                }
                println!("{} pair(s)", pairs.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ReviewCommand::Accept { kb, ids, as_user } => decide(&kb, &ids, as_user.as_deref(), PairStatus::Accepted, None, None),
        ReviewCommand::Reject { kb, ids, as_user } => decide(&kb, &ids, as_user.as_deref(), PairStatus::Rejected, None, None),
        ReviewCommand::Edit { kb, id, question, answer, as_user } => {
            if question.is_none() && answer.is_none() {
                bail!("give --question and/or --answer to edit a pair");
            }
            decide(&kb, &[id], as_user.as_deref(), PairStatus::Accepted, question.as_deref(), answer.as_deref())
        }
    }
}

/// Copies an adapter under <data-dir>/adapters/<name>/ and registers it as the name's next version.
#[allow(clippy::too_many_arguments)]
fn register(
    ctx: &Ctx,
    name: &str,
    file: &Path,
    base: &Path,
    kb: Option<&str>,
    rank: u32,
    alpha: f64,
    losses: Option<(f64, f64)>,
) -> Result<zhiku_store::RegisteredAdapter> {
    let store = open_store(ctx)?;
    if let Some(kb) = kb {
        if !store.kb_exists(kb)? {
            bail!("knowledge base '{kb}' does not exist");
        }
    }
    let parsed: zhiku_store::AdapterRef = name.parse().map_err(anyhow::Error::msg)?;
    if parsed.version.is_some() {
        bail!("register under a plain name ('{}'): versions are numbered as they are registered", parsed.name);
    }
    let version = store.next_adapter_version(name)?;
    let dir = ctx.data_dir.join("adapters").join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(format!("v{version}.gguf"));
    std::fs::copy(file, &dest).with_context(|| format!("cannot copy {} to {}", file.display(), dest.display()))?;
    let sha256 = zhiku_models::registry::sha256_file(&dest)?;
    let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    store.add_adapter(
        &zhiku_store::NewAdapter {
            name,
            path: &dest.to_string_lossy(),
            base_path: &base.to_string_lossy(),
            kb,
            rank,
            alpha,
            eval_loss_before: losses.map(|l| l.0),
            eval_loss_after: losses.map(|l| l.1),
            sha256: &sha256,
        },
        version,
    )?;
    audit(&store, "finetune.register", kb, json!({"adapter": name, "version": version, "sha256": sha256}))?;
    store
        .adapter(&zhiku_store::AdapterRef { name: name.to_string(), version: Some(version) })?
        .context("the adapter just registered is missing")
}

fn print_registered(a: &zhiku_store::RegisteredAdapter, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(a)?);
    } else {
        println!("registered {}@{} ({})", a.name, a.version, a.path);
    }
    Ok(())
}

/// The file of a registered adapter, checked to be made for `base`.
pub(crate) fn registered_adapter(ctx: &Ctx, which: &str, base: &Path) -> Result<PathBuf> {
    let which: zhiku_store::AdapterRef = which.parse().map_err(anyhow::Error::msg)?;
    match tuning::resolve_adapter(&*open_store(ctx)?, &which, base)? {
        Ok(adapter) => Ok(PathBuf::from(adapter.path)),
        Err(problem) => bail!("{problem}"),
    }
}

/// A model given as a file, else by its name in the registry.
fn resolve_model(ctx: &Ctx, model: Option<&Path>) -> Result<PathBuf> {
    let Some(model) = model else { return llm_path(ctx) };
    if model.is_file() {
        return Ok(model.to_path_buf());
    }
    if ctx.data_dir.join("zhiku.db").is_file() {
        if let Some(registered) = open_store(ctx)?.registered_model(&model.to_string_lossy())? {
            return Ok(PathBuf::from(registered.path));
        }
    }
    bail!("model {} is neither a file nor a registered model name (see `zhiku models list`)", model.display())
}

fn tokenized(tokenizer: &LlamaGenerator, path: &Path, max_tokens: usize) -> Result<(Vec<data::Example>, usize)> {
    let conversations = data::read_jsonl(path)?;
    let mut examples = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        if let Some(example) = data::tokenize(tokenizer, conversation, max_tokens)? {
            examples.push(example);
        }
    }
    Ok((examples, conversations.len()))
}

fn train(ctx: &Ctx, args: FinetuneTrainArgs) -> Result<ExitCode> {
    let base = resolve_model(ctx, args.base.as_deref())?;
    let config = TrainConfig {
        rank: args.rank,
        alpha: args.alpha.unwrap_or(2.0 * args.rank as f64),
        targets: args.targets,
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.learning_rate,
        warmup_steps: args.warmup,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        ..TrainConfig::default()
    };
    config.validate()?;
    let tokenizer = LlamaGenerator::load(&base).with_context(|| format!("cannot load the base model {}", base.display()))?;
    let (train_set, train_read) = tokenized(&tokenizer, &args.data, args.max_tokens)?;
    let (eval_set, eval_read) = tokenized(&tokenizer, &args.eval, args.max_tokens)?;
    drop(tokenizer);
    for (name, kept, read) in [("training", train_set.len(), train_read), ("evaluation", eval_set.len(), eval_read)] {
        if kept < read {
            eprintln!(
                "{} of {read} {name} conversations have no answer within --max-tokens {} and are skipped",
                read - kept,
                args.max_tokens
            );
        }
    }

    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(config.steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} step {pos}/{len} (eta {eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let report = zhiku_tune::train(&base, &train_set, &eval_set, &config, &args.out, &mut |step| {
        bar.set_position(step.step as u64);
        bar.set_message(format!("loss {:.4}, lr {:.2e}, {:.0} tokens/s", step.loss, step.learning_rate, step.tokens_per_second));
    })
    .with_context(|| format!("training an adapter for {} failed", base.display()))?;
    bar.finish_and_clear();
    let registered = match &args.register {
        Some(name) => Some(register(
            ctx,
            name,
            &args.out,
            &base,
            args.kb.as_deref(),
            config.rank as u32,
            config.alpha,
            Some((report.eval_loss_before, report.eval_loss_after)),
        )?),
        None => None,
    };

    if args.json {
        let mut out = serde_json::to_value(&report)?;
        if let Some(a) = &registered {
            out["registered"] = json!({"name": a.name, "version": a.version, "path": a.path});
        }
        println!("{}", serde_json::to_string(&out)?);
    } else {
        if let Some(a) = &registered {
            println!("registered as {}@{}", a.name, a.version);
        }
        if report.resumed_from_step > 0 {
            println!("resumed from the checkpoint at step {}", report.resumed_from_step);
        }
        println!(
            "trained {} steps on {} conversations ({:.0} tokens/s)\ntraining loss {:.4} → {:.4}\nevaluation loss {:.4} → {:.4}\nadapter: {} (apply with `zhiku generate --lora {}`)",
            report.steps,
            report.examples,
            report.tokens_per_second,
            report.train_loss_first,
            report.train_loss_last,
            report.eval_loss_before,
            report.eval_loss_after,
            args.out.display(),
            args.out.display(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
