//! Every committed fuzz input, replayed through the fuzz harness without the fuzzer: the
//! seeds of `fuzz/corpus/<target>/` and each crash or hang the fuzzer found, kept in
//! `fuzz/regressions/<target>/` after its fix. The harness (`fuzz/src`, shared with the fuzz
//! targets) checks the same properties here as under `cargo fuzz`.

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files under `dir/<target>/`, by target, sorted; every folder must name a target (a
/// file beside the folders, a README, is no input).
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return out;
    };
    for target in targets.flatten().filter(|t| t.path().is_dir()) {
        let name = target.file_name().to_string_lossy().into_owned();
        assert!(
            harness::target(&name).is_some(),
            "{}: no fuzz target `{name}`",
            dir.display()
        );
        for file in std::fs::read_dir(target.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push((name.clone(), file.path()));
        }
    }
    out.sort();
    out
}

fn replay(inputs: &[(String, PathBuf)]) {
    for (target, path) in inputs {
        let run = harness::target(target).unwrap_or(|_| ());
        let data = std::fs::read(path).unwrap_or_default();
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
}

/// Each fixed bug's input: the property it broke holds now.
#[test]
fn regressions_stay_fixed() {
    replay(&inputs(&fuzz_dir().join("regressions")));
}

/// The seed corpus, which every target starts from: the tests' tokens, key sets, conditions.
#[test]
fn seed_corpus_holds_the_properties() {
    let seeds = inputs(&fuzz_dir().join("corpus"));
    for (target, _) in harness::TARGETS {
        assert!(
            seeds.iter().any(|(t, _)| t == target),
            "no seeds for fuzz target `{target}`"
        );
    }
    replay(&seeds);
}

/// The fuzz configuration is the one the tests' tokens are signed for, so fuzzing gets past
/// the signature: seeds of the `token` target verify as access and as logout tokens.
#[test]
fn seed_tokens_verify_against_the_fuzz_configuration() {
    let (mut access, mut logout) = (0, 0);
    for (target, path) in inputs(&fuzz_dir().join("corpus")) {
        let data = std::fs::read(path).unwrap_or_default();
        if let (true, Ok(token)) = (target == "token", std::str::from_utf8(&data)) {
            let outcome = harness::token::check_token(token);
            access += usize::from(outcome.access);
            logout += usize::from(outcome.logout);
        }
    }
    assert!(
        access >= 5 && logout >= 3,
        "{access} access, {logout} logout tokens"
    );
}
