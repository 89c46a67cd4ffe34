//! The LoRA training loop: AdamW on the adapters only, gradient accumulation over whole
//! sequences, linear warm-up then cosine decay, gradient-norm clipping, checkpoints that a
//! killed run resumes from to the same result as an uninterrupted one.
//!
//! Reproducibility is by construction: the adapter initialisation and the order of examples
//! derive from the seed alone (never from a clock or thread), and a checkpoint holds everything
//! else that changes — adapters, optimizer moments, the step and the losses so far.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adapter::{write_atomically, Adapter};
use crate::data::Example;
use crate::llama::{LlamaModel, TARGETS};
use crate::{Error, Result};
use zhiku_core::random::SplitMix64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Projections to adapt, by GGUF name (see [`TARGETS`]).
    pub targets: Vec<String>,
    pub steps: usize,
    /// Sequences whose gradients are accumulated into one optimizer step.
    pub batch: usize,
    pub learning_rate: f64,
    /// Steps of linear warm-up before the cosine decay.
    pub warmup_steps: usize,
    /// The learning rate at the end, as a fraction of the peak.
    pub final_lr_fraction: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Steps between checkpoints (the last step always writes one).
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            steps: 100,
            batch: 4,
            learning_rate: 2e-4,
            warmup_steps: 0,
            final_lr_fraction: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 42,
            checkpoint_every: 10,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| Err(Error::Config { field: field.into(), reason: reason.into() });
        if self.rank == 0 {
            return bad("rank", "must be at least 1");
        }
        if self.steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning-rate", "must be a positive number");
        }
        if self.targets.is_empty() {
            return bad("targets", "name at least one projection");
        }
        if let Some(unknown) = self.targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
            return Err(Error::Config {
                field: "targets".into(),
                reason: format!("unknown projection {unknown:?}; use some of {}", TARGETS.join(", ")),
            });
        }
        Ok(())
    }

    /// Warm-up, then cosine from the peak down to `final_lr_fraction` of it.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let floor = self.learning_rate * self.final_lr_fraction;
        floor + (self.learning_rate - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// One finished optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub learning_rate: f64,
    pub tokens_per_second: f64,
}

/// What a training run achieved; losses are mean negative log-likelihood per answer token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    pub train_loss_first: f64,
    pub train_loss_last: f64,
    pub eval_loss_before: f64,
    pub eval_loss_after: f64,
    pub steps: usize,
    /// The step a checkpoint let this run start from (0: a fresh run).
    pub resumed_from_step: usize,
    /// Tokens (whole sequences, forward and backward) per second of this run's training.
    pub tokens_per_second: f64,
    pub examples: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    step: usize,
    losses: Vec<f64>,
    eval_loss_before: f64,
}

/// Trains adapters on `train`, measuring `eval` before and after, and writes the GGUF adapter
/// to `out`. Checkpoints go to `<out>.checkpoint/`; a run that finds one made with the same
/// base, data and settings continues from it.
pub fn train(
    base: &Path,
    train: &[Example],
    eval: &[Example],
    config: &TrainConfig,
    out: &Path,
    on_step: &mut dyn FnMut(&StepReport),
) -> Result<TrainReport> {
    config.validate()?;
    if train.is_empty() {
        return Err(Error::Config { field: "data".into(), reason: "no training example has an answer within the token limit".into() });
    }
    if eval.is_empty() {
        return Err(Error::Config { field: "eval".into(), reason: "no evaluation example has an answer within the token limit".into() });
    }
    let mut model = LlamaModel::load_gguf(base)?;
    model.attach_lora(config.rank, config.alpha, &config.targets, config.seed)?;
    let params = model.trainable();
    let mut optimizer = AdamW::new(&params)?;
    let fingerprint = fingerprint(base, train, eval, config)?;
    let checkpoints = Checkpoints::beside(out);

    let (start, mut losses, eval_loss_before) = match checkpoints.latest()? {
        Some(dir) => {
            let state = checkpoints.load(&dir, &fingerprint, &params, &mut optimizer)?;
            tracing::info!(step = state.step, "resuming LoRA training from its checkpoint");
            (state.step, state.losses, state.eval_loss_before)
        }
        None => (0, Vec::new(), mean_loss(&model, eval)?),
    };

    let started = Instant::now();
    let mut tokens_trained = 0usize;
    for step in start..config.steps {
        let batch: Vec<&Example> =
            (0..config.batch).map(|i| &train[example_at(step * config.batch + i, train.len(), config.seed)]).collect();
        let target_count: usize = batch.iter().map(|e| e.targets.len()).sum();
        // Sequences run side by side (one per core: the matrices of one short sequence are
        // too small for the kernels to spread), and are summed in batch order, so the result
        // does not depend on which finished first.
        let per_example: Vec<Result<(f64, Vec<Option<Tensor>>)>> = batch
            .par_iter()
            .map(|example| {
                let nll = model.sequence_nll(&example.tokens, &example.targets)?;
                let value = nll.to_scalar::<f32>()? as f64;
                let store = (nll / target_count as f64)?.backward()?;
                Ok((value, params.iter().map(|(_, var)| store.get(var.as_tensor()).cloned()).collect()))
            })
            .collect();
        let mut grads: Vec<Option<Tensor>> = vec![None; params.len()];
        let mut nll_sum = 0.0;
        for result in per_example {
            let (value, example_grads) = result?;
            nll_sum += value;
            for (slot, g) in grads.iter_mut().zip(example_grads) {
                if let Some(g) = g {
                    *slot = Some(match slot.take() {
                        Some(sum) => (sum + g)?,
                        None => g,
                    });
                }
            }
        }
        tokens_trained += batch.iter().map(|e| e.tokens.len()).sum::<usize>();
        let loss = nll_sum / target_count as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged { step: step + 1, loss });
        }
        let learning_rate = config.learning_rate_at(step);
        optimizer.step(&params, grads, learning_rate, config)?;
        losses.push(loss);
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        on_step(&StepReport {
            step: step + 1,
            steps: config.steps,
            loss,
            learning_rate,
            tokens_per_second: tokens_trained as f64 / elapsed,
        });
        let done = step + 1;
        if done % config.checkpoint_every.max(1) == 0 || done == config.steps {
            checkpoints.save(
                &CheckpointState { fingerprint: fingerprint.clone(), step: done, losses: losses.clone(), eval_loss_before },
                &params,
                &optimizer,
            )?;
        }
    }
    let tokens_per_second = tokens_trained as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let eval_loss_after = mean_loss(&model, eval)?;

    let adapter = Adapter {
        architecture: "llama".into(),
        alpha: config.alpha as f32,
        pairs: model.adapters().into_iter().map(|(name, pair)| (name, (pair.a.as_tensor().clone(), pair.b.as_tensor().clone()))).collect(),
    };
    adapter.write_gguf(out)?;
    checkpoints.remove();
    Ok(TrainReport {
        train_loss_first: losses.first().copied().unwrap_or(f64::NAN),
        train_loss_last: losses.last().copied().unwrap_or(f64::NAN),
        eval_loss_before,
        eval_loss_after,
        steps: config.steps,
        resumed_from_step: start,
        tokens_per_second,
        examples: train.len(),
    })
}

/// Mean negative log-likelihood per answer token over `examples`.
pub fn mean_loss(model: &LlamaModel, examples: &[Example]) -> Result<f64> {
    let mut total = 0.0;
    let mut count = 0usize;
    for example in examples {
        total += model.sequence_nll(&example.tokens, &example.targets)?.detach().to_scalar::<f32>()? as f64;
        count += example.targets.len();
    }
    Ok(total / count.max(1) as f64)
}

/// The example at position `position` of the training stream: epoch after epoch, each a
/// permutation of the examples drawn from the seed.
fn example_at(position: usize, count: usize, seed: u64) -> usize {
    let epoch = position / count;
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    for i in (1..count).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order[position % count]
}

/// Ties a checkpoint to what produced it: resuming with another base, data or settings would
/// silently train a different model.
fn fingerprint(base: &Path, train: &[Example], eval: &[Example], config: &TrainConfig) -> Result<String> {
    let mut hash = Sha256::new();
    let meta = std::fs::metadata(base).map_err(|e| Error::io(base, e))?;
    hash.update(meta.len().to_le_bytes());
    // How often checkpoints are written changes nothing in the result.
    let result_settings = TrainConfig { checkpoint_every: 0, ..config.clone() };
    hash.update(serde_json::to_vec(&result_settings).unwrap_or_default());
    for set in [train, eval] {
        hash.update((set.len() as u64).to_le_bytes());
        for example in set {
            for part in [&example.tokens, &example.targets] {
                hash.update((part.len() as u64).to_le_bytes());
                for t in part.iter() {
                    hash.update(t.to_le_bytes());
                }
            }
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// AdamW (Loshchilov & Hutter) with bias correction, its moments kept for checkpoints.
struct AdamW {
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl AdamW {
    fn new(params: &[(String, Var)]) -> Result<Self> {
        let zeros = || params.iter().map(|(_, v)| v.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>();
        Ok(Self { first: zeros()?, second: zeros()?, step: 0 })
    }

    fn step(&mut self, params: &[(String, Var)], grads: Vec<Option<Tensor>>, learning_rate: f64, config: &TrainConfig) -> Result<()> {
        let mut norm_sq = 0.0f64;
        for g in grads.iter().flatten() {
            norm_sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = norm_sq.sqrt();
        let clip = if config.max_grad_norm > 0.0 && norm > config.max_grad_norm { config.max_grad_norm / norm } else { 1.0 };
        self.step += 1;
        let correction1 = 1.0 - BETA1.powi(self.step as i32);
        let correction2 = 1.0 - BETA2.powi(self.step as i32);
        for (i, ((_, var), grad)) in params.iter().zip(grads).enumerate() {
            let Some(grad) = grad else { continue };
            let grad = (grad * clip)?;
            self.first[i] = ((&self.first[i] * BETA1)? + (&grad * (1.0 - BETA1))?)?;
            self.second[i] = ((&self.second[i] * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&self.first[i] / correction1)? / ((&self.second[i] / correction2)?.sqrt()? + EPSILON)?)?;
            let decayed = (var.as_tensor() * (1.0 - learning_rate * config.weight_decay))?;
            var.set(&(decayed - (update * learning_rate)?)?)?;
        }
        Ok(())
    }
}

/// Checkpoints as `step-NNNNNN/` folders next to the adapter, with a `latest` file naming the
/// last complete one: it is replaced only after the folder is written.
struct Checkpoints {
    root: PathBuf,
}

impl Checkpoints {
    fn beside(out: &Path) -> Self {
        let mut root = out.as_os_str().to_owned();
        root.push(".checkpoint");
        Self { root: PathBuf::from(root) }
    }

    fn latest(&self) -> Result<Option<PathBuf>> {
        let pointer = self.root.join("latest");
        match std::fs::read_to_string(&pointer) {
            Ok(name) => Ok(Some(self.root.join(name.trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&pointer, e)),
        }
    }

    fn save(&self, state: &CheckpointState, params: &[(String, Var)], optimizer: &AdamW) -> Result<()> {
        let name = format!("step-{:06}", state.step);
        let dir = self.root.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (i, (param_name, var)) in params.iter().enumerate() {
            tensors.insert(param_name.clone(), var.as_tensor().clone());
            tensors.insert(format!("{param_name}.adam_m"), optimizer.first[i].clone());
            tensors.insert(format!("{param_name}.adam_v"), optimizer.second[i].clone());
        }
        let tensor_path = dir.join("tensors.safetensors");
        candle_core::safetensors::save(&tensors, &tensor_path)?;
        let state_path = dir.join("state.json");
        let json = serde_json::to_vec_pretty(&(state, optimizer.step))
            .map_err(|e| Error::Checkpoint { path: state_path.clone(), reason: e.to_string() })?;
        std::fs::write(&state_path, json).map_err(|e| Error::io(&state_path, e))?;
        let previous = self.latest()?;
        write_atomically(&self.root.join("latest"), |mut file| {
            use std::io::Write;
            file.write_all(name.as_bytes()).and_then(|_| file.sync_all()).map_err(|e| Error::io(&self.root, e))
        })?;
        if let Some(previous) = previous.filter(|p| *p != dir) {
            let _ = std::fs::remove_dir_all(previous);
        }
        Ok(())
    }

    fn load(&self, dir: &Path, fingerprint: &str, params: &[(String, Var)], optimizer: &mut AdamW) -> Result<CheckpointState> {
        let bad = |reason: String| Error::Checkpoint { path: dir.to_path_buf(), reason };
        let state_path = dir.join("state.json");
        let raw = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let (state, optimizer_step): (CheckpointState, usize) = serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        if state.fingerprint != fingerprint {
            return Err(bad(format!(
                "it was made with another base model, data or settings; delete {} to start over, or train with the settings it was made with",
                self.root.display()
            )));
        }
        let tensors = candle_core::safetensors::load(dir.join("tensors.safetensors"), &Device::Cpu)?;
        let get = |name: &str| tensors.get(name).cloned().ok_or_else(|| bad(format!("tensor {name} is missing")));
        for (i, (name, var)) in params.iter().enumerate() {
            var.set(&get(name)?)?;
            optimizer.first[i] = get(&format!("{name}.adam_m"))?;
            optimizer.second[i] = get(&format!("{name}.adam_v"))?;
        }
        optimizer.step = optimizer_step;
        Ok(state)
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_to_its_floor() {
        let config = TrainConfig { steps: 100, warmup_steps: 10, learning_rate: 1e-3, final_lr_fraction: 0.1, ..TrainConfig::default() };
        assert!((config.learning_rate_at(0) - 1e-4).abs() < 1e-12);
        assert!((config.learning_rate_at(9) - 1e-3).abs() < 1e-12);
        assert!((config.learning_rate_at(10) - 1e-3).abs() < 1e-12);
        assert!(config.learning_rate_at(55) < config.learning_rate_at(30));
        assert!((config.learning_rate_at(100) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn every_epoch_visits_every_example_once() {
        for epoch in 0..3 {
            let mut seen: Vec<usize> = (0..7).map(|i| example_at(epoch * 7 + i, 7, 9)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..7).collect::<Vec<_>>());
        }
        let first: Vec<usize> = (0..7).map(|i| example_at(i, 7, 9)).collect();
        let second: Vec<usize> = (7..14).map(|i| example_at(i, 7, 9)).collect();
        assert_ne!(first, second, "epochs are shuffled afresh");
    }

    #[test]
    fn settings_are_checked_before_any_work() {
        let unknown = TrainConfig { targets: vec!["attn_qkv".into()], ..TrainConfig::default() };
        assert!(unknown.validate().unwrap_err().to_string().contains("attn_qkv"));
        assert!(TrainConfig { rank: 0, ..TrainConfig::default() }.validate().is_err());
        assert!(TrainConfig { learning_rate: f64::NAN, ..TrainConfig::default() }.validate().is_err());
        assert!(TrainConfig::default().validate().is_ok());
    }
}
