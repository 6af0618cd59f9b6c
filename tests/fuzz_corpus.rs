//! Replays the fuzz targets' committed corpus (`fuzz/corpus/TARGET/*`) through the entry
//! points libFuzzer drives (`vigil::fuzzing`), in seconds and without libFuzzer, so that an
//! input that once crashed (the `regression-*` files) stays fixed. `bench/fuzz` runs the
//! targets themselves; FUZZING.md records what they found.

use std::path::Path;

#[test]
fn the_fuzz_corpus_replays_without_a_panic() {
    for (name, run) in vigil::fuzzing::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{name}: the corpus has only {} inputs", files.len());
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            run(&data);
        }
    }
}
