//! An upstream's bytes as meshcore's own HTTP/1 client reads them: the response head
//! (1xx skipped, framing chosen) and the body decoded by that framing. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meshcore_proxy::fuzzing::http1_response(data);
});
