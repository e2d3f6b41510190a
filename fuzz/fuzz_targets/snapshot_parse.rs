//! Arbitrary bytes into the snapshot parser: it must never panic, and whatever it accepts
//! must survive a round trip through its own normal form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = meshcore_snapshot::parse(data) {
        let normal = serde_json::to_vec(&snapshot).expect("a parsed snapshot serialises");
        let again = meshcore_snapshot::parse(&normal).expect("the normal form parses");
        assert_eq!(again, snapshot);
    }
});
