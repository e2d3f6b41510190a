//! What a client's first bytes go through on an HTTP/1 listener, the first four bytes
//! choosing the header limits, the routes and the listener's port: protocol detection, the
//! malformed phase's 400, the own server's heads one after another with their bodies, the
//! limits phase, the virtual host and route lookup, and the route's action. Must never
//! panic; the checks are in `meshcore_proxy::fuzzing::http1_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meshcore_proxy::fuzzing::http1_request(data);
});
