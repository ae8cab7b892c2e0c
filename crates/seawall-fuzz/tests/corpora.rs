//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and the inputs behind past
//! findings, `fuzz/regressions/<target>/`) through its target, on stable: what a fuzzer once
//! found stays fixed.

use std::path::Path;

#[test]
fn every_committed_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        for (name, target) in seawall_fuzz::TARGETS {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                assert_ne!(kind, "corpus", "no corpus for {name} in {}", dir.display());
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{} fails {name}", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= seawall_fuzz::TARGETS.len(), "{replayed} inputs");
}
