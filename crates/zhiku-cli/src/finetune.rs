//! `zhiku finetune`: LoRA adapters trained here on the CPU.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use zhiku_models::LlamaGenerator;
use zhiku_tune::{data, TrainConfig};

use crate::cli::{FinetuneCommand, FinetuneTrainArgs};
use crate::commands::{llm_path, open_store, Ctx};

pub fn finetune(ctx: &Ctx, command: FinetuneCommand) -> Result<ExitCode> {
    match command {
        FinetuneCommand::Train(args) => train(ctx, *args),
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
            eprintln!("{} of {read} {name} conversations have no answer within --max-tokens {} and are skipped", read - kept, args.max_tokens);
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

    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
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
