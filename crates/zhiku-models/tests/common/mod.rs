use std::path::PathBuf;

/// The installed default models. `scripts/test.sh` installs them with `zhiku setup` and sets
/// ZHIKU_TEST_MODELS; a missing model is a failure, never a skip.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ZHIKU_TEST_MODELS")
        .map(PathBuf::from)
        .expect("ZHIKU_TEST_MODELS is not set: run the tests through scripts/test.sh, which installs the models");
    assert!(dir.is_dir(), "ZHIKU_TEST_MODELS={} does not exist; run scripts/test.sh", dir.display());
    dir
}
