//! Fuzzes the webhook server's answer: status line and whether the connection is kept. The body,
//! and what it checks beyond "no panic", is `herald::fuzzing::webhook_answer`, which a unit test
//! also runs over every kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::webhook_answer(input));
