//! Fuzzes the smarthost client machine and its reply parser: server bytes in. The body, and what it
//! checks beyond "no panic", is `herald::fuzzing::smtp_client`, which a unit test also runs over
//! every kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::smtp_client(input));
