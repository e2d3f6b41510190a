//! The first bytes of a connection: protocol detection, then the HTTP/1 request head
//! through matching and rewriting. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meshcore_proxy::fuzzing::http1_request(data);
});
