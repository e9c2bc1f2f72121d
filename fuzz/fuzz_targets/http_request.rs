//! Fuzzes the request reader both listeners use (the console's HTTPS front after TLS, and the
//! control socket): the head, its bounds, a chunked body. The body, and what it checks beyond
//! "no panic", is `herald::fuzzing::http_request`, which a unit test also runs over every kept
//! input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::http_request(input));
