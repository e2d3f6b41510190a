//! Route matchers, regex rewrites and redirects over arbitrary patterns and values. Must
//! never panic (regex compile errors are fine; validation reports them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meshcore_proxy::fuzzing::route_match(data);
});
