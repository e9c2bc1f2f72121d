//! Fuzzes the SMTP server machine: client bytes in, split anywhere. The body, and what it checks
//! beyond "no panic", is `herald::fuzzing::smtp_server`, which a unit test also runs over every
//! kept input.

#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| herald::fuzzing::smtp_server(input));
