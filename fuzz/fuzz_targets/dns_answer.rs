//! Fuzzes the diagnostics' DNS answer parser (simple-dns underneath). The body, and what it checks
//! beyond "no panic", is `herald::fuzzing::dns_answer`, which a unit test also runs over every
//! kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::dns_answer(input));
